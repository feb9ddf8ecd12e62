"""Book-only code: the figure primitives, the claims the chapters check, the API page of
appendix C. The package's other wings never import it. May import: any wing.
"""
