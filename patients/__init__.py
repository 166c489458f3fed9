"""The source patients (docs/design.md §0: the documents the project grew from) as package data."""
