"""Vercel's flat requirements file, made from requirements/production.txt.

Vercel's Python builder reads api/requirements.txt without opening included files (`-r`), so
deploy/vercel/requirements.txt holds the production pins themselves. Regenerate it after
changing requirements/production.txt:

    python -m testing.requirements

tests/deploy/test_vercel.py fails while the two differ.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ROOT / "requirements" / "production.txt"
VERCEL = ROOT / "deploy" / "vercel" / "requirements.txt"

HEADER = """\
# The function's dependencies: copy to api/requirements.txt. Vercel's builder cannot open a
# `-r` include, so these are requirements/production.txt's pins, written out by
# `python -m testing.requirements` (do not edit by hand; the deploy tests fail on a drift).
# No embedded PostgreSQL: a function cannot run it.
"""


def pins(path: Path) -> list[str]:
    """The requirement lines path installs, its `-r` includes written out in place."""
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            lines += pins(path.parent / line.split(maxsplit=1)[1])
        elif line.startswith("-"):
            # Only includes can be written out; any other option would change what is installed.
            raise ValueError(f"{path}:{number}: cannot flatten the option {line!r}")
        elif line:
            lines.append(line)
    return lines


def vercel_requirements() -> str:
    """The text of deploy/vercel/requirements.txt."""
    return HEADER + "".join(f"{line}\n" for line in pins(PRODUCTION))


def main() -> None:
    """Write deploy/vercel/requirements.txt."""
    VERCEL.write_text(vercel_requirements(), encoding="utf-8")
    print(f"wrote {VERCEL.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
