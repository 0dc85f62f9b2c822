// Builds an AssemblyScript project of this repository for the tests, as
// streamrt's modload does: npm ci (once) with the compiler its lock file
// pins, then asc with its asconfig.json. Returns the module's path.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

export function build(dir) {
  dir = resolve(dir);
  if (!existsSync(join(dir, "node_modules", "assemblyscript"))) {
    execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: dir, stdio: "inherit" });
  }
  const out = join(dir, "build", "test.wasm");
  execFileSync(process.execPath, [join(dir, "node_modules", "assemblyscript", "bin", "asc.js"),
    "--config", "asconfig.json", "--target", "release", "--outFile", out, "--noColors"], { cwd: dir, stdio: "inherit" });
  return out;
}
