"""Re-create every committed report under reports/ from the example configs in examples/, then
take a first-screen screenshot of each (docs/screenshots/NAME.png).

    python scripts/regenerate_reports.py                 # re-run every audit (embedding caches make it fast)
    python scripts/regenerate_reports.py --render-only   # re-render index.html from each results.json
    python scripts/regenerate_reports.py --only london-dlib --only london-compare
    python scripts/regenerate_reports.py --quick         # re-run the 1:1 and 1:N audits only (see below)

A full run calls the ``face-audit`` command for each config in examples/ (``run``, ``identify``,
``skintone``, ``classify`` or ``mitigate``, by the config's tables; skin-tone label files first,
since other configs read them), then writes the comparison of the three London systems
(reports/london-compare). ``--render-only`` re-renders the 1:1 and 1:N reports and the
comparison from the results.json already there (equivalent when only the report code changed; a
change to what the audit computes needs the full run). ``--quick`` re-runs the 1:1 and 1:N audits
and the comparison but leaves the skin-tone, classifier and mitigation reports as they are (their
runs take most of the time: skin tone is measured from the pixels again). Datasets are read from
``$FACE_AUDIT_MIRROR`` (default ``../shared/datasets`` when it exists). Screenshots need Chromium
(``/usr/bin/chromium``) and Playwright; ``--no-screenshots`` skips them. Prints each step's time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SHOTS = REPO / "docs" / "screenshots"
#: The comparison report: (report folder, label) of each system, and its title.
COMPARE = ("london-compare", "London set: three systems compared",
           [("london-dlib", "dlib ResNet"), ("london-deepface-dlib", "deepface Dlib"), ("london-opencv-sface", "OpenCV SFace")])
#: Configs whose output others read (skin-tone label files) run first.
FIRST = ("london-skintone.toml", "fairface-skintone.toml")


def _command(config: dict) -> str:
    for table, cmd in (("identification", "identify"), ("mitigation", "mitigate"), ("skintone", "skintone"),
                       ("classify", "classify"), ("classifier", "classify")):
        if table in config:
            return cmd
    return "run"


def _configs() -> list[tuple[str, Path, str]]:
    """(report name, config path, command) for every example config with an [output] dir."""
    paths = sorted(EXAMPLES.glob("*.toml"), key=lambda p: (p.name not in FIRST, p.name))
    out = []
    for p in paths:
        cfg = tomllib.loads(p.read_text(encoding="utf-8"))
        folder = (cfg.get("output") or {}).get("dir")
        if folder:
            out.append((Path(folder).name, p, _command(cfg)))
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    mirror = REPO.parent / "shared" / "datasets"
    if not env.get("FACE_AUDIT_MIRROR") and mirror.is_dir():
        env["FACE_AUDIT_MIRROR"] = str(mirror)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def _step(name: str, fn) -> float:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"{name:32s} {dt:7.1f} s", flush=True)
    return dt


def _run(cmd: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "audit.cli", *cmd], cwd=REPO, env=_env(), check=True,
                   stdout=subprocess.DEVNULL)


def _render(name: str) -> None:
    sys.path.insert(0, str(REPO))
    from audit.identification import read_result
    from audit.report import write_any_report

    folder = REPO / "reports" / name
    write_any_report(read_result(folder / "results.json"), folder)


def _compare() -> None:
    sys.path.insert(0, str(REPO))
    from audit.report import write_comparison_report
    from audit.verification.result import AuditResult

    name, title, systems = COMPARE
    results = [AuditResult.from_json(REPO / "reports" / n / "results.json") for n, _ in systems]
    write_comparison_report(results, REPO / "reports" / name, title=title, labels=[label for _, label in systems])


def screenshots(names: list[str], *, width: int = 1280, height: int = 900) -> None:
    """The first screen of each report as a PNG under docs/screenshots/ (palette-quantised to stay small)."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    chromium = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            for name in names:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto((REPO / "reports" / name / "index.html").as_uri(), wait_until="load")
                target = SHOTS / f"{name}.png"
                page.screenshot(path=str(target))
                page.close()
                Image.open(target).convert("RGB").quantize(colors=64).save(target, optimize=True)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--render-only", action="store_true", help="re-render from each results.json; run no audit")
    ap.add_argument("--only", action="append", metavar="NAME", help="only this report (a folder name under reports/)")
    ap.add_argument("--quick", action="store_true", help="re-run only the 1:1 and 1:N audits (and the comparison)")
    ap.add_argument("--no-screenshots", action="store_true", help="take no screenshots")
    args = ap.parse_args(argv)
    want = set(args.only or [])
    total, done = 0.0, []
    for name, config, cmd in _configs():
        if want and name not in want:
            continue
        if args.quick and cmd not in ("run", "identify"):
            continue
        if args.render_only:
            if cmd not in ("run", "identify") or not (REPO / "reports" / name / "results.json").exists():
                continue
            total += _step(f"render {name}", lambda n=name: _render(n))
        else:
            total += _step(f"{cmd} {name}", lambda c=cmd, p=config: _run([c, str(p.relative_to(REPO)), "--no-progress"]))
        done.append(name)
    if not want or COMPARE[0] in want:
        total += _step(f"compare {COMPARE[0]}", _compare)
        done.append(COMPARE[0])
    if not args.no_screenshots:
        total += _step(f"screenshots ({len(done)})", lambda: screenshots(done))
    print(f"{'total':32s} {total:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
