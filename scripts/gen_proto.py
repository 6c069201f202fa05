"""Generate agent/api/ from proto/ (messages, gRPC stubs and .pyi type stubs).

The generated modules import each other as ``kilo.agent.v1``; they are rewritten to live under
``agent.api`` so the package needs no top-level ``kilo`` module. ``--check`` compares instead of
writing, so a test can fail when the committed code is stale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "agent" / "api"
PROTOS = ["kilo/agent/v1/agent.proto"]


def generate() -> dict[str, str]:
    """Run protoc (grpcio-tools) into a temp dir and return {relative path: rewritten text}."""
    import os

    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    # protoc finds the mypy-protobuf plugins on PATH: put the running venv's bin first.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *PROTOS,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        files: dict[str, str] = {}
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                text = path.read_text()
                text = text.replace(
                    "from kilo.agent.v1 import", "from agent.api.kilo.agent.v1 import"
                )
                text = text.replace("import kilo.agent.v1.", "import agent.api.kilo.agent.v1.")
                files[str(path.relative_to(tmp))] = text
        return files


def package_inits(files: dict[str, str]) -> dict[str, str]:
    """Every generated directory becomes a package."""
    dirs = {str(Path(p).parent) for p in files}
    inits: dict[str, str] = {
        "__init__.py": '"""Generated protobuf and gRPC code; do not edit."""\n'
    }
    for d in dirs:
        parts = Path(d).parts
        for i in range(1, len(parts) + 1):
            inits[str(Path(*parts[:i]) / "__init__.py")] = ""
    return inits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if agent/api is stale")
    args = parser.parse_args()
    files = generate()
    files.update(package_inits(files))
    if args.check:
        stale = [
            p
            for p, text in files.items()
            if not (OUT_DIR / p).is_file() or (OUT_DIR / p).read_text() != text
        ]
        for p in stale:
            print(f"stale: agent/api/{p}  (run `make proto`)", file=sys.stderr)
        return 1 if stale else 0
    for p, text in files.items():
        target = OUT_DIR / p
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    print(f"wrote {len(files)} files under {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
