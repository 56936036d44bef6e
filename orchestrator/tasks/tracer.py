"""Copied into a sandbox and run there (never on the host): line tracing of a test run.

    python3 tracer.py OUT.json -m pytest -q

Runs `python -m MODULE ARGS` in-process under sys.settrace, recording the
lines executed in files under the current directory, then writes
{relative path: [line, ...]} to OUT.json and exits with the run's exit code.
Standard library only, so it works in any image without network.
"""

import json
import os
import runpy
import sys
import threading


def main() -> int:
    out, flag, module, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if flag != "-m":
        print("usage: tracer.py OUT.json -m MODULE [ARGS...]", file=sys.stderr)
        return 2
    root = os.getcwd() + os.sep
    hits: dict[str, set[int]] = {}
    wanted: dict[object, bool] = {}

    def local(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "line":
            hits[frame.f_code.co_filename].add(frame.f_lineno)
        return local

    def first(frame, event, arg):  # type: ignore[no-untyped-def]
        code = frame.f_code
        keep = wanted.get(code)
        if keep is None:
            keep = wanted[code] = code.co_filename.startswith(root)
        if not keep:
            return None
        hits.setdefault(code.co_filename, set()).add(frame.f_lineno)
        return local

    sys.path.insert(0, os.getcwd())
    sys.argv = [module, *args]
    code = 0
    threading.settrace(first)
    sys.settrace(first)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.settrace(None)
        threading.settrace(None)
        result = {name[len(root):]: sorted(lines) for name, lines in hits.items()}
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
    return code


if __name__ == "__main__":
    sys.exit(main())
