"""Regenerates the committed gRPC stubs from search.proto: `python -m r1stack.websearch._regenerate`.

The stubs are committed so that installing r1stack needs no build step; run this after editing the .proto.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HEADER = "# Generated from search.proto by r1stack.websearch._regenerate (grpcio-tools). Do not edit.\n# ruff: noqa\n"
OUTPUTS = ("search_pb2.py", "search_pb2.pyi", "search_pb2_grpc.py")


def main() -> None:
    from grpc_tools import protoc

    package_dir = Path(__file__).resolve().parent
    src_root = (
        package_dir.parent.parent
    )  # protoc paths relative to src/ give imports `from r1stack.websearch ...`
    proto = package_dir / "search.proto"
    args = [
        "protoc",
        f"-I{src_root}",
        f"--python_out={src_root}",
        f"--pyi_out={src_root}",
        f"--grpc_python_out={src_root}",
        str(proto.relative_to(src_root)),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed; see the message above")
    paths = [package_dir / name for name in OUTPUTS]
    for path in paths:
        path.write_text(HEADER + path.read_text())
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    # Formatting keeps `ruff format --check` quiet over the whole tree; the noqa header does the same for lint.
    subprocess.run([ruff, "format", "--quiet", *map(str, paths)], check=False)
    print("regenerated:", ", ".join(OUTPUTS))


if __name__ == "__main__":
    main()
