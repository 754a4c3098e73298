// The contract's guest errors as exceptions. A unit throws one of these;
// the export glue turns it into the WIT `error` variant the host can act
// on (retry after a delay, fail the job, report a config problem). Any
// other exception traps the call: it is a bug in the connector.

export const DEFAULT_RETRY_SECONDS = 30;

export class ConnectorError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
  /** The WIT `error` value. */
  toWit() {
    throw new TypeError(`${this.name} has no contract error; use one of its subclasses`);
  }
}

/** Transient failure; try again after `seconds`. */
export class Retryable extends ConnectorError {
  constructor(message, seconds = DEFAULT_RETRY_SECONDS) {
    super(message);
    this.seconds = Math.max(0, Math.trunc(seconds));
  }
  toWit() {
    return { tag: 'retryable', val: { seconds: this.seconds, message: this.message } };
  }
}

/** The backend throttled us; its limit resets after `seconds`. */
export class RateLimited extends ConnectorError {
  constructor(message, seconds = 60) {
    super(message);
    this.seconds = Math.max(0, Math.trunc(seconds));
  }
  toWit() {
    return { tag: 'rate-limited', val: { seconds: this.seconds, message: this.message } };
  }
}

/** Will fail again however often it is tried. */
export class Permanent extends ConnectorError {
  toWit() {
    return { tag: 'permanent', val: this.message };
  }
}

/** The record is gone from the backend. */
export class NotFound extends ConnectorError {
  toWit() {
    return { tag: 'not-found', val: this.message };
  }
}

/** The backend's configuration (credentials, allowlist, settings) is wrong. */
export class ConfigError extends ConnectorError {
  toWit() {
    return { tag: 'config', val: this.message };
  }
}

/** Nothing to do for this record (OCA's `NothingToDoJob`). */
export class NothingToDo extends ConnectorError {
  toWit() {
    return { tag: 'nothing-to-do', val: this.message };
  }
}
