"""Run every benchmark in ``bench/`` and print its figures; exit 1 only when one crashes.

.venv/bin/python -m bench [--only NAME] [benchmark options]
"""

import argparse
import importlib
import pkgutil
import sys
import traceback

import bench


def discover() -> list:
    modules = []
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda info: info.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):
            modules.append(module)
    return modules


def main(argv=None) -> int:
    modules = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    names = [getattr(module, "NAME", module.__name__.rsplit(".", 1)[1]) for module in modules]
    parser.add_argument("--only", action="append", choices=names, help="run only this benchmark (repeatable)")
    for name, module in zip(names, modules, strict=True):
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser.add_argument_group(name, (module.__doc__ or "").strip().splitlines()[0]))
    args = parser.parse_args(argv)
    crashed = []
    for name, module in zip(names, modules, strict=True):
        if args.only and name not in args.only:
            continue
        try:
            module.run(args)
        except KeyboardInterrupt:
            raise
        except Exception:
            traceback.print_exc()
            print(f"{name}: CRASHED (see the traceback above)", flush=True)
            crashed.append(name)
        sys.stdout.flush()
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
