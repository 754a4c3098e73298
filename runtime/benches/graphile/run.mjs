// graphile-worker's throughput on the same PostgreSQL, for the pg_queue
// benchmark: installed from npm into the folder given (outside the
// repository's sources), then run the way its perfTest runs it — the
// schema installed, N jobs added (add_jobs), and
// PARALLELISM worker processes of CONCURRENCY jobs each with `--once`
// draining them; the startup/shutdown time of an empty run is taken off.
// Prints `jobs/s <rate>`.
import { execFileSync, execFile } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const [dir, count] = [process.argv[2], parseInt(process.argv[3] ?? "50000", 10)];
const url = process.env.PERF_DATABASE_URL;
const VERSION = "0.17.3"; // the newest that runs on this machine's Node.js 20
const PARALLELISM = 4;
const CONCURRENCY = 24;
const SCHEMA = "graphile_bench";

mkdirSync(join(dir, "tasks"), { recursive: true });
if (!existsSync(join(dir, "node_modules", "graphile-worker"))) {
  writeFileSync(join(dir, "package.json"), JSON.stringify({ private: true }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--silent", `graphile-worker@${VERSION}`, "pg"], {
    cwd: dir,
    stdio: ["ignore", "ignore", "inherit"],
  });
}
writeFileSync(join(dir, "tasks", "noop.js"), "module.exports = async () => {};\n");
// The perfTest's worker settings.
writeFileSync(
  join(dir, "graphile.config.js"),
  `module.exports = { worker: {
    connectionString: ${JSON.stringify(url)},
    schema: ${JSON.stringify(SCHEMA)},
    taskDirectory: ${JSON.stringify(join(dir, "tasks"))},
    concurrentJobs: ${CONCURRENCY},
    maxPoolSize: ${CONCURRENCY + 1},
    localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
    completeJobBatchDelay: 0,
    failJobBatchDelay: 0,
  } };\n`,
);

const cli = join(dir, "node_modules", ".bin", "graphile-worker");
const env = { ...process.env, NO_LOG_SUCCESS: "1" };
const opts = { cwd: dir, env, maxBuffer: 64 << 20 };
const pg = (await import(join(dir, "node_modules", "pg", "lib", "index.js"))).default;
const client = new pg.Client({ connectionString: url });
await client.connect();
await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
await run(cli, ["--schema-only"], opts);

const time = async (f) => {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e6;
};
const once = () => run(cli, ["--once", "-j", String(CONCURRENCY), "-m", String(CONCURRENCY + 1)], opts);
const startup = await time(once);
// add_jobs, in statements of 10,000: add_job once per job in one statement
// slows down far more than linearly here (minutes for 50,000).
for (let from = 1; from <= count; from += 10000) {
  await client.query(
    `select ${SCHEMA}.add_jobs(array(
       select row('noop', json_build_object('id', i), null, null, null, null, null, null)::${SCHEMA}.job_spec
       from generate_series($1::int, $2::int) i))`,
    [from, Math.min(count, from + 9999)],
  );
}
const took = await time(() => Promise.all(Array.from({ length: PARALLELISM }, once)));
const left = await client.query(`select count(*)::int as n from ${SCHEMA}._private_jobs`);
await client.end();
if (left.rows[0].n !== 0) {
  console.error(`${left.rows[0].n} jobs left undone`);
  process.exit(1);
}
console.log(`jobs/s ${((1000 * count) / (took - startup)).toFixed(0)}`);
