"""Reference log Z values for targets without an exact one (LGCP, logistic regression, ...).

Numbers are never typed in by hand: :func:`compute_reference_log_z` runs a long
sampler run (SMC by default; ``importance`` for a unimodal posterior, as the stored
Ionosphere and Sonar values; via ``logz.samplers.get``) and stores the result
in a JSON file together with its standard error, the exact command that
reproduces it, the sampler configuration, and the SHA-256 of the target's data
file. Command line::

    python -m logz.bench.reference lgcp --out references.json --num-samples 20000 \\
        --sampler-config '{"num_replicates": 16}'

The JSON file maps target names to records; running it for another target
adds (or replaces) that target's record. :func:`load_reference_log_z` reads a
record back and, given the target, checks that its data file is unchanged.

The project's stored references (ionosphere, sonar, LGCP; ``results/references.json``,
their reading in ``results/reference/README.md``) are what ``logz bench`` and
``logz calibrate`` compare with when no ``--reference-file`` is given:
:func:`default_reference_file` finds them in a source checkout, or wherever
``$LOGZ_REFERENCE_FILE`` points.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

PathLike = Union[str, os.PathLike]


def reference_command(target: str, out: PathLike, num_samples: int, sampler: str, seed: int,
                      target_kwargs: dict, sampler_config: dict) -> str:
    """The shell command that reproduces a reference run (``python -m logz.bench.reference ...``)."""
    parts = ["python", "-m", "logz.bench.reference", target, "--out", str(out),
             "--num-samples", str(num_samples), "--sampler", sampler, "--seed", str(seed)]
    if target_kwargs:
        parts += ["--target-kwargs", json.dumps(target_kwargs, sort_keys=True)]
    if sampler_config:
        parts += ["--sampler-config", json.dumps(sampler_config, sort_keys=True)]
    cmd = " ".join(shlex.quote(p) for p in parts)
    data_dir = os.environ.get("LOGZ_DATA_DIR")
    return f"LOGZ_DATA_DIR={shlex.quote(data_dir)} {cmd}" if data_dir else cmd


def compute_reference_log_z(target: str, out: PathLike, *, num_samples: int = 20000,
                            sampler: str = "smc", seed: int = 0, target_kwargs: Optional[dict] = None,
                            sampler_config: Optional[dict] = None) -> dict:
    """Run ``logz.samplers.get(sampler, target, seed=seed, **sampler_config).estimate_log_z(num_samples)``
    on the registered target and store the result in the JSON file ``out``.

    Args:
        target: a registered target name (``logz.targets.get(target, **target_kwargs)``).
        out: JSON file; created, or updated with this target's record (keyed by target.name).
        num_samples: particles / samples of the run (long runs: 10⁴ or more).
        target_kwargs, sampler_config: JSON-serializable keyword arguments.
    Returns:
        The stored record: log_z, stderr, elbo, ess, num_samples, target, target_name,
        target_kwargs, sampler, sampler_config, seed, command, data_path, data_sha256,
        wall_seconds, created, torch_version.
    """
    import logz.samplers as S
    import logz.targets as T

    target_kwargs = dict(target_kwargs or {})
    sampler_config = dict(sampler_config or {})
    json.dumps([target_kwargs, sampler_config])  # fail early if not serializable
    tgt = T.get(target, **target_kwargs)
    smp = S.get(sampler, tgt, seed=seed, **sampler_config)
    t0 = time.perf_counter()
    smp.fit(0)
    est = smp.estimate_log_z(num_samples)
    wall = time.perf_counter() - t0
    data_path = getattr(tgt, "data_path", None)
    record = {
        "target": target, "target_name": getattr(tgt, "name", target), "dim": int(tgt.dim),
        "log_z": est.log_z, "stderr": est.stderr, "elbo": est.elbo, "ess": est.ess,
        "num_samples": est.num_samples, "sampler": sampler, "sampler_config": sampler_config,
        "seed": seed, "target_kwargs": target_kwargs,
        "command": reference_command(target, out, num_samples, sampler, seed, target_kwargs, sampler_config),
        "data_path": None if data_path is None else str(data_path),
        "data_sha256": getattr(tgt, "data_sha256", None),
        "wall_seconds": round(wall, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
    }
    out = Path(out)
    table = json.loads(out.read_text()) if out.is_file() else {}
    table[record["target_name"]] = record
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    return record


REFERENCE_FILE_ENV = "LOGZ_REFERENCE_FILE"


def default_reference_file() -> Optional[Path]:
    """The reference file used when none is given: ``$LOGZ_REFERENCE_FILE`` if set (an error
    if it names no file), else the project's ``results/references.json`` beside the ``logz``
    package (a source checkout or editable install), else None (an installed wheel has none:
    pass ``--reference-file``)."""
    env = os.environ.get(REFERENCE_FILE_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ValueError(f"${REFERENCE_FILE_ENV} = {env!r} is not a file")
        return path
    path = project_root() / "results" / "references.json"
    return path if path.is_file() else None


def project_root() -> Path:
    """The directory above the ``logz`` package (a source checkout's root)."""
    import logz

    return Path(logz.__file__).resolve().parent.parent


def load_reference_log_z(path: PathLike, target: Union[str, object]) -> dict:
    """The stored record for ``target`` (a name, or a target object whose ``name`` is looked up).

    Given a target object with ``data_sha256``, raises ``ValueError`` if the record was
    computed on different data. KeyError (listing the stored names) if absent.
    """
    table = json.loads(Path(path).read_text())
    name = target if isinstance(target, str) else getattr(target, "name", None)
    if name not in table:
        raise KeyError(f"no reference log Z for {name!r} in {path}; stored: {sorted(table)}")
    rec = table[name]
    sha = None if isinstance(target, str) else getattr(target, "data_sha256", None)
    if sha is not None and rec.get("data_sha256") not in (None, sha):
        raise ValueError(f"reference log Z for {name!r} in {path} was computed on different data "
                         f"(sha256 {rec['data_sha256'][:12]}..., this target's {sha[:12]}...)")
    return rec


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point (see module doc)."""
    ap = argparse.ArgumentParser(prog="python -m logz.bench.reference",
                                 description="Compute a reference log Z with a long sampler run.")
    ap.add_argument("target")
    ap.add_argument("--out", required=True)
    ap.add_argument("--num-samples", type=int, default=20000)
    ap.add_argument("--sampler", default="smc")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-kwargs", type=json.loads, default={})
    ap.add_argument("--sampler-config", type=json.loads, default={})
    a = ap.parse_args(argv)
    rec = compute_reference_log_z(a.target, a.out, num_samples=a.num_samples, sampler=a.sampler,
                                  seed=a.seed, target_kwargs=a.target_kwargs,
                                  sampler_config=a.sampler_config)
    print(f"{rec['target_name']}: log Z = {rec['log_z']:.4f} ± {rec['stderr']:.4f} "
          f"({rec['wall_seconds']:.0f} s) -> {a.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
