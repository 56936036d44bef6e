"""fresh-sandbox isolation side: the only package that imports docker."""
