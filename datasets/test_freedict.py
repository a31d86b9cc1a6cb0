"""Unit tests of datasets/freedict.py's dictd reader, on entries written as
FreeDict's eng-deu package writes them (no network)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import freedict  # noqa: E402


def dictd(entries):
    """An index and data for (headword, entry text) pairs, as dictd lays them out."""
    data = b""
    lines = []

    def number(value):
        text = ""
        while True:
            text = freedict.B64[value % 64] + text
            value //= 64
            if value == 0:
                return text

    for headword, text in entries:
        raw = text.encode()
        lines.append(f"{headword}\t{number(len(data))}\t{number(len(raw))}")
        data += raw
    return "\n".join(lines), data


class TestFreedict(unittest.TestCase):
    def test_numbers_are_dictd_base64(self):
        self.assertEqual(freedict.dictd_number("B"), 1)
        self.assertEqual(freedict.dictd_number("BA"), 64)
        self.assertEqual(freedict.dictd_number("FVrr"), 5 * 64**3 + 21 * 64**2 + 43 * 64 + 43)

    def test_single_word_translations_without_labels(self):
        entry = ("movie /mˈuːvi/\n [Am.] Spielfilm <masc>, Film <masc>\n"
                 "         Note: TV; Kino; DVD\n   Synonyms: {feature film}, {film}\n")
        self.assertEqual(freedict.translations(entry, "movie"), ["Spielfilm", "Film"])
        entry = "good /ɡˈʊd/\nlieb, brav <adj>, nichts Gutes <neut>\n"
        self.assertEqual(freedict.translations(entry, "good"), ["lieb", "brav"])

    def test_an_abbreviations_expansion_is_not_the_words_entry(self):
        entry = ("computed axial tomography /kəmpjˈuːtɪd/ (CAT /kˈat/)\n"
                 "Schichtröntgen <neut>, Computertomografie <fem>\n")
        self.assertEqual(freedict.translations(entry, "cat"), [])

    def test_dictionary_joins_entries_and_skips_phrases_and_capitals(self):
        index, data = dictd([
            ("cat", "cat /kˈat/\nKatze <fem> [zool.]\n"),
            ("cat", "cat /kˈat/\nKater <masc>, Katze <fem>\n"),
            ("alley cat", "alley cat /ˈali kat/\nStreunerkatze <fem>\n"),
            ("CAT", "CAT /kˈat/\nCT\n"),
            ("river", "river /ɹˈɪvə/\nFluss <masc>, Strom <masc>, Fluss\n"),
        ])
        words = freedict.read_dictionary(index, data, 8)
        self.assertEqual(words, {"cat": ["Katze", "Kater"], "river": ["Fluss", "Strom"]})
        self.assertEqual(freedict.read_dictionary(index, data, 1)["cat"], ["Katze"])
        merged = freedict.merge([words, {"cat": ["chat"], "dog": ["chien"]}], 8)
        self.assertEqual(merged, {"cat": ["Katze", "Kater", "chat"], "dog": ["chien"],
                                  "river": ["Fluss", "Strom"]})


if __name__ == "__main__":
    unittest.main()
