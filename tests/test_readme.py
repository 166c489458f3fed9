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


def test_readme_example_names_no_machine_path():
    block = (readme_example.REPO / "README.md").read_text().split(readme_example.START)[1]
    assert str(readme_example.REPO) not in block and "/work/" not in block
