"""The source patients (DESIGN §0: the documents the project grew from) as package data."""
