"""The docs' picture of a report (docs/report-demo.png): `tuneval report` over PATHS, opened in headless Chromium.

    .venv/bin/python bench/report_screenshot.py runs/demo --out docs/report-demo.png

Takes the top of the page (the comparison, the score bars and the curves) and, below a grey
rule, the start of the side-by-side samples, at 1280 px wide, scaled to 1000 px and saved as an optimised PNG, kept under
500 KB so the repository stays small. Fails if the page logs an error or makes a request.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # the browser driver is test tooling (tests/report/browser.py)

from tuneval.report import write_report  # noqa: E402
from tests.report.browser import Chromium  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "report-demo.png")
    ap.add_argument("--height", type=int, default=2000, help="CSS pixels of the page to keep, from the top")
    ap.add_argument("--samples-height", type=int, default=900, help="CSS pixels kept from the samples section")
    ap.add_argument("--width", type=int, default=1000, help="width of the saved image")
    ap.add_argument("--title", default="tuneval demo")
    args = ap.parse_args()

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        page = write_report(args.paths, Path(tmp) / "report.html", title=args.title)
        with Chromium(width=1280, height=900) as b:
            b.open(page)
            problems = b.problems()
            if any(problems.values()):
                sys.exit(f"the page reported problems: {problems}")
            parts = [b.screenshot(Path(tmp) / "top.png", 0, args.height)]
            samples = b.evaluate("(() => { const s = document.getElementById('samples');"
                                 " return s ? s.getBoundingClientRect().top + window.scrollY : null; })()")
            if samples is not None and samples > args.height:
                parts.append(b.screenshot(Path(tmp) / "samples.png", samples, args.samples_height))
        shots = [Image.open(p).convert("RGB") for p in parts]
    img = Image.new("RGB", (shots[0].width, sum(s.height for s in shots) + 12 * (len(shots) - 1)), "#c8cdd4")
    y = 0
    for s in shots:  # a grey rule where the page was cut
        img.paste(s, (0, y))
        y += s.height + 12
    img = img.resize((args.width, round(img.height * args.width / img.width)), Image.LANCZOS)
    img = img.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buf.getvalue())
    kb = len(buf.getvalue()) / 1024
    print(f"{args.out}: {img.width}x{img.height}, {kb:.0f} KB")
    if kb > 500:
        sys.exit(f"{args.out} is {kb:.0f} KB, over the 500 KB budget: lower --height or --width")


if __name__ == "__main__":
    main()
