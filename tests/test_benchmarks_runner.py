from benchmarks.__main__ import BEGIN, END, upsert_row


def test_upsert_row_replaces_only_its_own_row():
    doc = "# B\n"
    doc = upsert_row(doc, "alpha", "| alpha | 1x | `c` | m | d |")
    doc = upsert_row(doc, "beta", "| beta | 2x | `c` | m | d |")
    doc = upsert_row(doc, "alpha", "| alpha | 3x | `c` | m | d |")
    table = doc.split(BEGIN)[1].split(END)[0]
    rows = [ln for ln in table.strip().splitlines()[2:]]
    assert rows == ["| alpha | 3x | `c` | m | d |", "| beta | 2x | `c` | m | d |"]
    assert doc.startswith("# B\n")
