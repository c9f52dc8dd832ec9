"""Row readers (data/sources.py): good rows read, bad rows named by file:line."""

import pytest

from tuneval.data.sources import read_file
from tuneval.errors import TunevalError

def test_label_text_and_trec_lines(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("1 a fine film .\n\n0 dull\r\n")
    rows = read_file(p, ["label", "sentence"], "label_text")
    assert [(r["label"], r["sentence"], r["_where"]) for r in rows] == [
        ("1", "a fine film .", f"{p}:1"), ("0", "dull", f"{p}:3")]
    t = tmp_path / "trec.txt"
    t.write_text("DESC:manner How did it go ?\nLOC:city Where is it ?\n")
    rows = read_file(t, format="trec")
    assert [(r["coarse_label"], r["fine_label"], r["text"]) for r in rows] == [
        ("DESC", "manner", "How did it go ?"), ("LOC", "city", "Where is it ?")]


@pytest.mark.parametrize("fmt,text,message", [
    ("label_text", "1 good\n0\n", r"train.txt:2: expected '<label> <text>'"),
    ("trec", "DESC:manner How ?\nmanner How ?\n", r"train.txt:2: expected 'COARSE:fine question'"),
    ("trec", "DESC: How ?\n", r"train.txt:1: expected 'COARSE:fine question'"),
    ("tsv_lines", "x\n", r"train.txt: unknown format 'tsv_lines' \(known: label_text, trec\)"),
])
def test_bad_lines_name_file_and_line(tmp_path, fmt, text, message):
    p = tmp_path / "train.txt"
    p.write_text(text)
    with pytest.raises(TunevalError, match=message):
        read_file(p, format=fmt)


@pytest.mark.parametrize("name,fmt", [("train.jsonl", None), ("train.csv", None), ("train.tsv", None),
                                      ("train.txt", "label_text"), ("train.txt", "trec")])
@pytest.mark.parametrize("bad,what", [(b"caf\xe9 ok", "byte 0xe9"), (b"\x00\x00\x01\x02", "a NUL byte"),
                                      (b"\x89PNG\r\n\x1a\n", "byte 0x89")])
def test_binary_or_non_utf8_file_names_file_and_line(tmp_path, name, fmt, bad, what):
    """Every reader (training and benchmark) fails in one line naming file:line, not with a UnicodeDecodeError."""
    p = tmp_path / name
    p.write_bytes(b"a,b\n1,2\n" + bad + b"\n")
    with pytest.raises(TunevalError, match=rf"{name}:3: not UTF-8 text \({what}\)"):
        read_file(p, format=fmt)


def test_utf8_bom_and_crlf_are_text(tmp_path):
    p = tmp_path / "train.csv"
    p.write_bytes(b"\xef\xbb\xbfid,text\r\n1,caf\xc3\xa9\r\n")
    assert [(r["id"], r["text"], r["_where"]) for r in read_file(p)] == [("1", "café", f"{p}:2")]


@pytest.mark.parametrize("sample_by,texts,lines", [
    ("paragraph", ["One line\nand its next.", "Second   paragraph.", "Third."], [2, 5, 9]),
    ("line", ["One line", "and its next.", "Second   paragraph.", "Third."], [2, 3, 5, 9]),
    ("document", ["One line\nand its next.\n\nSecond   paragraph.\n \n\n\nThird."], [2]),
])
def test_plain_text_documents_split_as_hf_text_sample_by(tmp_path, sample_by, texts, lines):
    """A .txt of notes: paragraphs (blank lines, even ones holding spaces, separate them), lines, or the whole file."""
    from tuneval.data.sources import read_documents

    p = tmp_path / "notes.txt"
    p.write_text("\nOne line\nand its next.\n\nSecond   paragraph.\n \n\n\nThird.\n\n")
    rows = read_documents(p, sample_by)
    assert [r["text"] for r in rows] == texts and [r["_where"] for r in rows] == [f"{p}:{n}" for n in lines]
    with pytest.raises(TunevalError, match="sample_by must be one of paragraph, line, document, got 'sentence'"):
        read_documents(p, "sentence")
