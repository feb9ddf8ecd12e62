"""Author-year citations, the same in the text and in the list of references.

A pybtex style ``llmfs``: entries sorted by author, year and title (a corporate
author such as ``{OpenAI}`` by its name, not after Z for its brace), each labelled
"Vaswani et al., 2017" (one author: "Gage, 1994"; two: "Eldan and Li, 2023"), with
a, b, ... after the year when one label would name two works ("Touvron et al.,
2023a"). With ``bibtex_reference_style = "label"`` the text cites by that label too.
"""

from __future__ import annotations

import re
from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle


def _surname(person) -> str:
    name = " ".join(person.prelast_names + person.last_names)
    return re.sub(r"[{}]", "", name)


def _names(entry) -> list[str]:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    if not names:  # software and web pages: the title's head stands in for a name
        names = [re.sub(r"[{}]", "", entry.fields.get("title", entry.key)).split(":")[0]]
    return names


def author_year(entry) -> str:
    names = _names(entry)
    who = (names[0] if len(names) == 1 else f"{names[0]} and {names[1]}"
           if len(names) == 2 else f"{names[0]} et al.")
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        labels = [author_year(e) for e in sorted_entries]
        total, seen = Counter(labels), Counter()
        for label in labels:
            if total[label] > 1:
                seen[label] += 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label


class AuthorYearSorting(BaseSortingStyle):
    """By the names the label shows (braces dropped), then year, then title."""

    def sorting_key(self, entry):
        return ([n.lower() for n in _names(entry)], entry.fields.get("year", ""),
                re.sub(r"[{}]", "", entry.fields.get("title", "")).lower())


class AuthorYearStyle(PlainStyle):
    default_label_style = AuthorYearLabels
    default_sorting_style = AuthorYearSorting  # a class: pybtex takes it as it is


def setup(app):
    register_plugin("pybtex.style.formatting", "llmfs", AuthorYearStyle)
    return {"parallel_read_safe": True}
