//! Compiling components with bounded time and memory.
//!
//! Cranelift's time and memory grow with the code it is given, and a
//! component can be crafted to make both explode (millions of locals,
//! nested blocks or functions in a few megabytes). Compiled inside the
//! node, such a bomb took gigabytes and seconds of a tokio worker. So:
//!
//! - one compilation at a time per host ([`Compiler::permit`]), off the
//!   async workers (`spawn_blocking`): jobs keep running beside it;
//! - with `HostConfig::compiler` set (the service sets it to its own
//!   executable), in a child process (`junction __compile-component`)
//!   whose address space and CPU time are capped with `setrlimit`, and
//!   which is killed at `compile_timeout`: a bomb ends the child, never the
//!   node, and is refused with the limit named. The child hands back the
//!   serialized artifact, which the node loads as it loads its cache.
//!
//! Without `compiler` (library use, most tests) compilation runs in the
//! process, still one at a time and off the async workers, but without a
//! memory bound; SECURITY.md says so.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine};

use super::HostConfig;

/// The hidden subcommand the child runs.
pub const CHILD_COMMAND: &str = "__compile-component";

/// Why a component could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "compiling the component needed more than {limit_mib} MiB of memory and was stopped; \
         a connector this expensive to compile is refused (raise compile_memory_bytes in junction.toml if it is trusted)"
    )]
    Memory { limit_mib: u64 },
    #[error(
        "compiling the component took longer than {seconds} s and was stopped; \
         a connector this expensive to compile is refused (raise compile_timeout in junction.toml if it is trusted)"
    )]
    Time { seconds: u64 },
    #[error("the compiler process failed: {0}")]
    Process(String),
}

/// An engine that generates the same code as the host's (same settings
/// that shape code) without reserving instance slots: the child compiles,
/// it never instantiates, so it runs under a small address-space limit.
pub(crate) fn code_engine(fuel: bool) -> wasmtime::Result<Engine> {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(fuel);
    Engine::new(&cfg)
}

/// Compile `bytes` to a serialized artifact for `engine`, under `config`'s
/// bounds. Runs on a blocking thread; the caller holds the host's permit.
pub(crate) fn compile(
    engine: &Engine,
    config: &HostConfig,
    bytes: &[u8],
) -> Result<Vec<u8>, CompileError> {
    match &config.compiler {
        None => engine
            .precompile_component(bytes)
            .map_err(|e| CompileError::Invalid(format!("{e:#}"))),
        Some(program) => in_child(program, config, bytes),
    }
}

fn in_child(program: &Path, config: &HostConfig, bytes: &[u8]) -> Result<Vec<u8>, CompileError> {
    let memory = config.compile_memory_bytes;
    let timeout = config.compile_timeout;
    let mut command = Command::new(program);
    command
        .arg(CHILD_COMMAND)
        .arg(if config.fuel { "fuel" } else { "no-fuel" })
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    limit(&mut command, memory, timeout);
    let mut child = command
        .spawn()
        .map_err(|e| CompileError::Process(format!("{}: {e}", program.display())))?;
    // Feed and drain on threads so that neither pipe fills and blocks.
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        // Only the start of what the child says is kept.
        let mut text = String::new();
        let _ = (&mut stderr).take(8 << 10).read_to_string(&mut text);
        let _ = std::io::copy(&mut stderr, &mut std::io::sink());
        text
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = feeder.join();
                let _ = reader.join();
                let _ = errors.join();
                return Err(CompileError::Time {
                    seconds: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(CompileError::Process(e.to_string())),
        }
    };
    let _ = feeder.join();
    let artifact = reader.join().unwrap_or_default();
    let said = errors.join().unwrap_or_default();
    if status.success() {
        return Ok(artifact);
    }
    if status.code() == Some(INVALID) {
        return Err(CompileError::Invalid(crate::text::clean(said.trim())));
    }
    // Killed by the CPU limit (SIGXCPU, or SIGKILL past the hard limit).
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if matches!(status.signal(), Some(libc::SIGXCPU) | Some(libc::SIGKILL)) {
            return Err(CompileError::Time {
                seconds: timeout.as_secs(),
            });
        }
    }
    // Anything else under an address-space limit is an allocation that
    // failed: Rust aborts on it.
    Err(CompileError::Memory {
        limit_mib: memory >> 20,
    })
}

/// Exit code of the child for a component that is not valid.
const INVALID: i32 = 3;

#[cfg(unix)]
#[allow(unsafe_code)]
fn limit(command: &mut Command, memory: u64, timeout: Duration) {
    use std::os::unix::process::CommandExt;
    let cpu = timeout.as_secs().max(1);
    // SAFETY: between fork and exec only async-signal-safe calls are made
    // (setrlimit), with values computed before the fork.
    unsafe {
        command.pre_exec(move || {
            let set = |resource, soft: u64, hard: u64| {
                let limit = libc::rlimit {
                    rlim_cur: soft as libc::rlim_t,
                    rlim_max: hard as libc::rlim_t,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            set(libc::RLIMIT_AS, memory, memory)?;
            set(libc::RLIMIT_CPU, cpu, cpu + 1)?;
            set(libc::RLIMIT_CORE, 0, 0)?;
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn limit(_command: &mut Command, _memory: u64, _timeout: Duration) {}

/// The child's side: component on stdin, artifact on stdout. Returns the
/// process exit code.
pub fn child_main(args: &[String]) -> i32 {
    let fuel = args.first().is_some_and(|a| a == "fuel");
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("reading the component: {e}");
        return 1;
    }
    let engine = match code_engine(fuel) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("creating the compiler: {e:#}");
            return 1;
        }
    };
    match engine.precompile_component(&bytes) {
        Ok(artifact) => match std::io::stdout().write_all(&artifact) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("writing the artifact: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            INVALID
        }
    }
}
