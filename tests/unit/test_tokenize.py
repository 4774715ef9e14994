import pandas as pd

from sagestack.data.tokenize import course_tokenize, word_tokenize


def test_contractions_and_punctuation_follow_nltk():
    assert word_tokenize("i can't believe it's here!") == ["i", "ca", "n't", "believe", "it", "'s", "here", "!"]
    assert course_tokenize('Love it, "really". Fits (mostly)') == "love it really . fits ( mostly )"


def test_sentence_final_periods_split_but_numbers_and_abbreviations_do_not():
    assert course_tokenize("I wear a 6. it fits. Great") == "i wear a 6. it fits . great"
    assert course_tokenize("I am 5'4 and 120 lbs") == "i am 5 ' 4 and 120 lbs"


def test_newlines_never_survive():
    assert "\n" not in course_tokenize("line one\nline two\r\nthree")


def test_matches_the_course_blazingtext_files(shared_data, course_blazingtext_files):
    """The course tokenized reviews_balanced.csv with NLTK into the BlazingText files: we match >= 98%."""
    ours = {course_tokenize(text) for text in pd.read_csv(shared_data / "reviews_balanced.csv")["review_body"]}
    lines = [
        line.rstrip("\n").split(" ", 1)[1]
        for path in course_blazingtext_files
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
    ]
    agreement = sum(line in ours for line in lines) / len(lines)
    assert len(lines) == 7110
    assert agreement >= 0.98, agreement
