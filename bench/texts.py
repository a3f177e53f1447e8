"""Texts in other languages and scripts for the quality benchmark: cited here, fetched from a package registry.

None of them is in the repository. Each is taken from a package on npm, PyPI or Debian, pinned by version and
by the SHA-256 of what it ships, cleaned to running text (one poem line or paragraph per line) and kept in a
cache folder outside the repository: $CONTINUO_BENCH_TEXTS, or ~/.cache/continuo-bench. All but the Czech are
in the public domain; the Czech is freely licensed (GPL-2.0-or-later), not public domain.

    python bench/texts.py            # fetch and clean every text; print its size and where it lies
    python bench/texts.py song-ci    # one of them

song-ci    Classical Chinese, Han script, no spaces. The first 5,000 ci of the Complete Song Ci (全宋词, Song dynasty,
           960-1279), simplified characters. Public domain; the compilation is MIT. npm `chinese-poetry` 2.0.1,
           package/dist/songci/ci.song.{0,1000,...,4000}.json.
old-norse  Old Norse (Old Icelandic), Latin script with þ, ð, æ, ö, richly inflected (four cases, strong and weak
           declensions, verbs by person, number and mood). Völsunga saga, anonymous, Iceland, 13th century, in the
           normalised spelling of heimskringla.no (the Heimskringla project digitised it): prose, its verse one line
           per verse line. Public domain, as the package states; the packaging (Clément Besnier, 2019) is MIT. PyPI
           `norsecorpus` 1.0.2, norsecorpus/data/heimskringla/Völsunga_saga/txt/complete.txt, the only saga that
           package holds.
hebrew     Hebrew, Hebrew script, right to left. לאן? (Whither?), a novella by Mordecai Ze'ev Feierberg (1874-1899),
           published 1899. Public domain. Debian `dasher-data` 5.0.0~beta~repack2-4,
           /usr/share/dasher/training_hebrew_IL.txt.
czech      Czech, Latin script with diacritics, seven cases. Samples of the Czech National Corpus: fiction, press,
           sport results, adverts, mostly of the 1990s. Not public domain: freely licensed, GPL-2.0-or-later,
           granted in the file itself by Ústav Českého národního korpusu FF UK, Praha, 2004. Debian `dasher-data`
           5.0.0~beta~repack2-4, /usr/share/dasher/training_czech_CS.txt.

Where `dasher-data` is installed (`apt-get install dasher-data`), its files are read where they lie; otherwise
`apt-get download` fetches the package into the cache. `npm pack` fetches `chinese-poetry` (85 MB, once: only
the cleaned text is kept); `pip download` fetches `norsecorpus`'s wheel (204 kB).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHINESE_POETRY = "chinese-poetry@2.0.1"
CHINESE_POETRY_SHA256 = "25b549e46919c3a0569db6b68ddc96956b04a484ea4518ad2bbd4f137e307e86"  # its npm tarball
SONG_CI_FILES = [f"package/dist/songci/ci.song.{n}.json" for n in range(0, 5000, 1000)]  # 1,000 ci each
NORSECORPUS = "norsecorpus==1.0.2"
NORSECORPUS_SHA256 = "fde26959afc464c9d1f255b893b529d10e0f3bcf42322092b0db97ab2601acf0"  # its wheel on PyPI
VOLSUNGA_FILE = "norsecorpus/data/heimskringla/Völsunga_saga/txt/complete.txt"
DASHER_DATA = "dasher-data=5.0.0~beta~repack2-4"
DASHER_INSTALLED = Path("/usr/share/dasher")
LACUNA = re.compile("[□\ufffd]")  # a character the edition could not read, or one lost to a bad encoding


def cache_folder() -> Path:
    return Path(os.environ.get("CONTINUO_BENCH_TEXTS") or Path.home() / ".cache" / "continuo-bench")


def scratch() -> tempfile.TemporaryDirectory:
    """A folder for a download, in the cache so that a large package need not fit in /tmp; removed after."""
    cache_folder().mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=cache_folder())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checked(data: bytes, expected: str, what: str) -> bytes:
    if sha256(data) != expected:
        raise RuntimeError(f"{what} is not the text this benchmark cites (SHA-256 {sha256(data)}, not {expected})")
    return data


def fetched(argv: list[str], folder: Path) -> Path:
    """Run a registry client that writes one file into an empty folder; return that file."""
    proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
    files = list(folder.iterdir())
    if proc.returncode != 0 or len(files) != 1:
        raise RuntimeError(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return files[0]


# Song ci ----------------------------------------------------------------------------------------------------


def song_ci_from_json(pieces: list[dict]) -> str:
    """One line per line of verse, a blank line after each ci; a ci with an unreadable character is left out."""
    out = []
    for ci in pieces:
        lines = [line.strip() for line in ci["paragraphs"] if line.strip()]
        if lines and not any(LACUNA.search(line) for line in lines):
            out.append("\n".join(lines) + "\n\n")
    return "".join(out)


def song_ci_raw() -> list[bytes]:
    with scratch() as tmp:
        tarball = checked(
            fetched(["npm", "pack", "--silent", CHINESE_POETRY], Path(tmp)).read_bytes(),
            CHINESE_POETRY_SHA256,
            f"npm {CHINESE_POETRY}",
        )
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        return [tar.extractfile(name).read() for name in SONG_CI_FILES]  # type: ignore[union-attr]


def song_ci() -> str:
    return "".join(song_ci_from_json(json.loads(raw)) for raw in song_ci_raw())


# Old Norse ----------------------------------------------------------------------------------------------------


def old_norse() -> str:
    # chapter numbers hold no letter and go, with the blank lines; each paragraph and verse line keeps its line
    with scratch() as tmp:
        argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", NORSECORPUS]
        wheel = checked(fetched(argv, Path(tmp)).read_bytes(), NORSECORPUS_SHA256, f"PyPI {NORSECORPUS}")
    with zipfile.ZipFile(io.BytesIO(wheel)) as whl:
        return paragraphs(whl.read(VOLSUNGA_FILE).decode("utf-8"))


# Dasher's training texts ------------------------------------------------------------------------------------


def dasher_file(name: str, expected: str) -> str:
    """One of dasher-data's training texts: where it is installed, else from the package fetched by apt."""
    installed = DASHER_INSTALLED / name
    if installed.exists():
        data = installed.read_bytes()
    else:
        with scratch() as tmp:
            deb = fetched(["apt-get", "download", "-q", DASHER_DATA], Path(tmp))
            files = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(files)) as tar:
            data = tar.extractfile(f"./usr/share/dasher/{name}").read()  # type: ignore[union-attr]
    return checked(data, expected, f"{DASHER_DATA}'s {name}").decode("utf-8")


def paragraphs(text: str, drop_first: int = 0, drop_last: int = 0) -> str:
    """One paragraph per line: lines that hold no letter, soft hyphens and the ends named are dropped."""
    lines = [" ".join(line.replace("\xad", "").split()) for line in text.splitlines()]
    lines = [line for line in lines if any(ch.isalpha() for ch in line)]
    return "".join(line + "\n" for line in lines[drop_first : len(lines) - drop_last])


def czech() -> str:
    # first the corpus's copyright, licence and "add further texts at the end" lines; last Dasher's own addition
    raw = dasher_file("training_czech_CS.txt", "4c0cb57916e9113fa15300af03e93e28c72d99e47b762ff49ed7ac7d9ffe1c21")
    return paragraphs(raw, drop_first=3, drop_last=1)


def hebrew() -> str:
    # first the title, the author and a link back to the library's table of contents
    raw = dasher_file("training_hebrew_IL.txt", "8ab375d130a5b3ff06ae87b98f3494b9911e834cbb0194876b83caeea6cde3ea")
    return paragraphs(raw, drop_first=3)


# -------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    language: str  # and script
    work: str  # with its author and date
    licence: str
    package: str  # registry, name and version
    clean: Callable[[], str]  # fetches what it needs; returns the running text


TEXTS = {
    "song-ci": Text(
        "Classical Chinese (Han, no spaces)",
        "全宋词 Complete Song Ci, its first 5,000 ci (Song dynasty, 960-1279)",
        "public domain (the compilation: MIT)",
        f"npm {CHINESE_POETRY}",
        song_ci,
    ),
    "old-norse": Text(
        "Old Norse (Latin script with þ and ð, richly inflected)",
        "Völsunga saga, anonymous (Iceland, 13th century), normalised by the Heimskringla project",
        "public domain (the packaging: MIT)",
        f"PyPI {NORSECORPUS}",
        old_norse,
    ),
    "hebrew": Text(
        "Hebrew (Hebrew script, right to left)",
        "לאן? (Whither?) by Mordecai Ze'ev Feierberg, 1899",
        "public domain",
        f"Debian {DASHER_DATA}",
        hebrew,
    ),
    "czech": Text(
        "Czech (Latin script, richly inflected)",
        "samples of the Czech National Corpus (fiction, press, sport results, adverts; mostly of the 1990s)",
        "freely licensed, not public domain: GPL-2.0-or-later (Ústav Českého národního korpusu FF UK, 2004)",
        f"Debian {DASHER_DATA}",
        czech,
    ),
}


def path(name: str) -> Path:
    """The cleaned text's file in the cache, made on first use."""
    target = cache_folder() / f"{name}.txt"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        text = TEXTS[name].clean()
        part = target.with_suffix(".part")
        part.write_text(text, "utf-8")
        part.replace(target)  # a stopped fetch leaves no half text behind
    return target


def text(name: str) -> str:
    return path(name).read_text("utf-8")


def main() -> None:
    names = sys.argv[1:] or list(TEXTS)
    unknown = [name for name in names if name not in TEXTS]
    if unknown:
        print(f"unknown text {unknown[0]!r}: choose among {', '.join(TEXTS)}", file=sys.stderr)
        sys.exit(2)
    for name in names:
        t, body = TEXTS[name], text(name)
        print(f"{name}: {len(body):,} characters, {body.count(chr(10)):,} lines, {path(name)}")
        print(f"  {t.language}; {t.work}; {t.licence}; {t.package}")


if __name__ == "__main__":
    main()
