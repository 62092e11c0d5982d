"""Load a root filesystem directory into Docker as an image, with a hand-written image config.

    python3 ci/images/load_image.py ROOTFS TAG CONFIG_JSON

Writes a one-layer `docker save`-format archive (manifest.json, the config, layer.tar) to
`docker load` on stdin. Unlike `docker import --change`, every config field is available
(StopSignal among them) and no builder or registry is involved. CONFIG_JSON is the image's
"config" object (Env, Entrypoint, Cmd, User, WorkingDir, ExposedPorts, StopSignal, Labels).
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def _layer(rootfs: Path, out: Path) -> str:
    """Tar ``rootfs`` (owners and modes as on disk) into ``out``; returns its sha256 (the diff id)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False)
    digest = hashlib.sha256()
    with out.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    rootfs, tag, config = Path(argv[0]), argv[1], json.loads(argv[2])
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="makrx-image-") as tmp:
        layer = Path(tmp) / "layer.tar"
        diff_id = _layer(rootfs, layer)
        image_config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": created,
                "config": config,
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
                "history": [{"created": created, "created_by": "ci/images/build.sh (root filesystem)"}],
            },
            sort_keys=True,
        ).encode()
        config_name = hashlib.sha256(image_config).hexdigest() + ".json"
        manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]}])
        archive = Path(tmp) / "image.tar"
        with tarfile.open(archive, "w") as tar:
            for name, data in (
                (config_name, image_config),
                ("manifest.json", manifest.encode()),
                (f"{diff_id}/VERSION", b"1.0"),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            tar.add(layer, arcname=f"{diff_id}/layer.tar")
        with archive.open("rb") as fh:
            done = subprocess.run(["docker", "load", "--quiet"], stdin=fh, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"docker load failed: {done.stderr.strip()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
