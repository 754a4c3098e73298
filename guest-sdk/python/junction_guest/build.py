"""`junction-componentize`: build a Python unit into a component, checked.

    junction-componentize app -p connectors/my-connector -o my-connector.wasm
        [--wit wit] [--world connector-http | full-connector-http]

Before building, the unit is imported natively against the world's
bindings and checked: the classes `export()` defined match the world's
exports, and the manifest's operations fit them (an adapter needs a world
with `wasi:http/outgoing-handler`; `import`/`export` need a mapper; events
need a listener). Each mistake is named with its fix, before
componentize-py spends its 10–20 s. After building, `junction connector
inspect` (found on PATH or in $JUNCTION) checks the component the way the
host will at install.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

EXPORTS = ("Describe", "Adapter", "Mapper", "Listener", "Features", "Lookup", "Webhooks", "Tasks")
ADAPTER_OPS = ("search", "read", "create", "write", "delete")
MAPPER_OPS = ("import", "export")
SDK = Path(__file__).resolve().parent.parent


class BuildError(Exception):
    """A mistake in the unit, named with what to do."""


def _componentize_py(args: list[str]) -> None:
    """componentize-py in a child process (its entry point exits)."""
    code = "import sys\nfrom componentize_py import script\nsys.argv[0] = 'componentize-py'\nsys.exit(script())"
    done = subprocess.run([sys.executable, "-c", code, *args], env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    if done.returncode != 0:
        raise BuildError(f"componentize-py failed (exit {done.returncode}); its message is above")


def find_wit(start: Path) -> Optional[Path]:
    """The nearest `wit/` holding the contract's worlds, from `start` up."""
    for folder in [start, *start.parents]:
        if (folder / "wit" / "worlds.wit").is_file():
            return folder / "wit"
    return None


def check(module_name: str, paths: list[Path], bindings: Path, world: str) -> list[str]:
    """Import the unit natively against `bindings` and name every mismatch
    between it, its manifest and `world`."""
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    sys.path[:0] = [str(bindings), *map(str, paths), str(SDK)]
    try:
        import wit_world.exports as world_exports

        wanted = {n for n in EXPORTS if hasattr(world_exports, n)}
        has_http = importlib.util.find_spec("wit_world.imports.outgoing_handler") is not None
        try:
            module = importlib.import_module(module_name)
        except AttributeError as e:
            # `export()` reaching for an export class the world lacks.
            missing = str(e).partition("'wit_world.exports' has no attribute ")[2].strip("'")
            if not missing:
                raise BuildError(f"importing {module_name} failed: AttributeError: {e}") from None
            return [
                f"{module_name} passes {missing.lower()}= to export(), but world {world} does not export "
                f"{missing.lower()}: build for connector-http (adapter, mapper, listener), adapter-unit-http or mapper-unit"
            ]
        except Exception as e:
            raise BuildError(f"importing {module_name} failed: {type(e).__name__}: {e}") from None
        defined = {n for n in EXPORTS if hasattr(module, n)}
        problems = []
        for name in sorted(wanted - defined):
            problems.append(
                f"world {world} exports {name.lower()}, but {module_name} defines no {name}: "
                f"pass {name.lower()}= to export(), or build for a world without it"
            )
        for name in sorted(defined - wanted):
            problems.append(
                f"{module_name} defines {name}, but world {world} does not export {name.lower()}: "
                "build for connector-http (adapter, mapper, listener), adapter-unit-http or mapper-unit"
            )
        if "Describe" in defined:
            manifest = module.Describe().describe()
            ops = {str(op).lower() for m in manifest.models for op in _ops(m.operations)}
            if ops & set(ADAPTER_OPS) and not has_http:
                problems.append(
                    f"the manifest declares {', '.join(sorted(ops & set(ADAPTER_OPS)))}, which need HTTP, "
                    f"but world {world} does not import wasi:http/outgoing-handler: "
                    "build for connector-http or adapter-unit-http"
                )
            if ops & set(ADAPTER_OPS) and "Adapter" not in defined:
                problems.append("the manifest declares adapter operations but no Adapter is exported: pass adapter= to export()")
            if ops & set(MAPPER_OPS) and "Mapper" not in defined:
                problems.append("the manifest declares import/export but no Mapper is exported: pass mapper= to export()")
            if manifest.events and "Listener" not in defined:
                problems.append("the manifest names events but no Listener is exported: pass listener= to export()")
            if not manifest.models:
                problems.append("the manifest lists no models: a unit serves only the models it lists")
        return problems
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            del sys.modules[name]


def _ops(flags) -> list[str]:
    """The names of the WIT `operations` flags set."""
    return [f.name for f in type(flags) if f in flags and f.name]


def inspect(out: Path) -> Optional[str]:
    """`junction connector inspect out`'s verdict; None without junction."""
    junction = os.environ.get("JUNCTION") or shutil.which("junction")
    if not junction:
        return None
    done = subprocess.run([junction, "connector", "inspect", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        # What the host would refuse at install is not left behind.
        out.unlink(missing_ok=True)
        raise BuildError(f"the built component fails `junction connector inspect`: {done.stderr.strip()}")
    return done.stdout


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="junction-componentize", description=__doc__.split("\n\n")[0])
    p.add_argument("module", help="the unit's app module (it calls junction_guest.component.export)")
    p.add_argument("-p", "--path", action="append", default=[], help="a folder the module and its packages are in")
    p.add_argument("-o", "--out", required=True, help="the .wasm to write")
    p.add_argument("--wit", help="the contract's wit/ folder (default: the nearest wit/ above this folder)")
    p.add_argument("--world", default="connector-http", help="the world to build for (default: connector-http)")
    p.add_argument("--no-inspect", action="store_true", help="skip `junction connector inspect` after building")
    a = p.parse_args(argv)
    paths = [Path(x).resolve() for x in a.path or ["."]]
    wit = Path(a.wit) if a.wit else find_wit(Path.cwd()) or find_wit(SDK)
    if wit is None or not (wit / "worlds.wit").is_file():
        print("error: no wit/ with worlds.wit found: pass --wit pointing at Junction's wit/ folder", file=sys.stderr)
        return 2
    out = Path(a.out)
    try:
        with tempfile.TemporaryDirectory() as bindings:
            _componentize_py(["-d", str(wit), "-w", a.world, "bindings", bindings])
            problems = check(a.module, paths, Path(bindings), a.world)
        if problems:
            raise BuildError("\n  ".join(["the unit does not fit its world; nothing was built:", *problems]))
        args = ["-d", str(wit), "-w", a.world, "componentize"]
        for path in [*paths, SDK]:
            args += ["-p", str(path)]
        _componentize_py([*args, a.module, "-o", str(out)])
        verdict = None if a.no_inspect else inspect(out)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if verdict is None:
        print(f"built {out}; not checked against the contract: put junction on PATH (or set JUNCTION), "
              f"or run `junction connector inspect {out}`")
    else:
        print(f"built {out}\n{verdict}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
