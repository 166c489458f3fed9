"""The README's worked example is generated, not pasted: it matches what the model prints now."""

from scripts import readme_example


def test_readme_worked_example_is_current(palsy):
    assert readme_example.main(["--check"]) == 0, "run: python -m scripts.readme_example"


def test_readme_names_the_two_commands():
    text = (readme_example.REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert readme_example.START in text and readme_example.END in text
