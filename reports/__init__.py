"""palsy's presentation layer: wording, figures and reports built from answers."""
