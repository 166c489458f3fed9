"""The README's worked example is generated, not pasted: it matches what the model prints now."""

from palsy.scripts import readme_example


def test_readme_worked_example_is_current(palsy):
    assert readme_example.main(["--check"]) == 0, "run: python -m palsy.scripts.readme_example"


def test_readme_names_the_two_commands():
    text = (readme_example.REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert readme_example.START in text and readme_example.END in text


def test_check_allows_monte_carlo_error_and_nothing_else():
    d = readme_example.differences
    assert d("P 25.3% (90% CrI 3.5% to 60.7%)", "P 25.9% (90% CrI 3.4% to 62.0%)") == []
    assert d("P 25.3%", "P 31.0%"), "a shift beyond Monte Carlo error is stale"
    assert d("leading bell", "leading zoster"), "words are compared exactly"
    assert d("  x 0.92  (x 0.37", "   x 0.9  (x 0.36") == [], "column padding follows the numbers' widths"
    causes = ("infiltration", "vincristine")
    assert d("5.4% ->   49.7%   infiltration", "5.3% ->   48.0%   vincristine", causes) == [], "a near-tie's leader"
    assert d("5.4% ->   49.7%   infiltration", "5.3% ->   48.0%   anything", causes), "only a cause for a cause"
    assert d("<0.1%", "0.1%"), "a bound is not a number"
    assert d("evidence 4e9eeb375134", "evidence 4e9eeb375135"), "a hash is a word"
    assert d("a\nb", "a"), "a missing line is stale"
    assert d("from /work/main/priors/decision.yaml", "from priors/decision.yaml")


def test_check_reads_a_rests_on_table_as_one_table():
    """Which small parts make the top rows of "what it rests on" is a draw of the chain (seen: a machine whose
    refit listed 'rate of bell' where the README had 'rate of vincristine', both 1.4%); a large part missing
    or moved beyond Monte Carlo error is stale."""
    d = readme_example.differences

    def table(*rows: tuple[str, str, float]) -> str:
        return "\n".join(["rests on:", *(f"  {part:<58} {kind:<9} {share:>5.1f}%" for part, kind, share in rows), "end"])

    readme = table(("base rate", "judgment", 70.1), ("finding frequencies", "data", 7.1),
                   ("rate of vincristine", "judgment", 1.4))
    assert d(readme, table(("base rate", "judgment", 68.0), ("finding frequencies", "data", 8.3),
                           ("rate of bell", "data", 1.4))) == []
    assert d(readme, table(("base rate", "judgment", 70.1), ("rate of zoster", "judgment", 7.1),
                           ("rate of vincristine", "judgment", 1.4))), "a large part gone"
    assert d(readme, table(("base rate", "judgment", 60.1), ("finding frequencies", "data", 7.1),
                           ("rate of vincristine", "judgment", 1.4))), "a large part moved by 10 points"
    assert d(readme, table(("base rate", "data", 70.1), ("finding frequencies", "data", 7.1),
                           ("rate of vincristine", "judgment", 1.4))), "judgment or data is a word"
    assert d(readme, readme.replace("end", "other")), "the lines around the table are compared as before"


def test_readme_example_names_no_machine_path():
    block = (readme_example.REPO / "README.md").read_text().split(readme_example.START)[1]
    assert str(readme_example.REPO) not in block and "/work/" not in block
