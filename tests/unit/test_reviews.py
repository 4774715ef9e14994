"""Loading and validation of review CSVs: every bad-input case with its exact message."""

from pathlib import Path

import pytest

from sagestack.data.reviews import load_reviews, rating_to_sentiment
from sagestack.errors import DataError

HEADER = "sentiment,review_body,product_category\n"


def write(tmp_path: Path, text: str | bytes, name: str = "reviews.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_course_layout_loads_and_cleans(tmp_path):
    path = write(tmp_path, HEADER + '1,"Great   dress,\nloved ""it""",Dresses\n-1,Too small,Knits\n0,OK,Knits\n')
    loaded = load_reviews(path)
    assert loaded.layout == "course"
    assert loaded.frame["sentiment"].tolist() == [1, -1, 0]
    # embedded newline and quotes survive parsing; whitespace is normalised
    assert loaded.frame["review_body"].tolist()[0] == 'Great dress, loved "it"'


def test_raw_layout_maps_ratings_and_drops_empty_reviews(tmp_path):
    raw = (
        "Clothing ID,Age,Title,Review Text,Rating,Recommended IND,Positive Feedback Count,Division Name,Department Name,Class Name\n"
        "1,30,t,Lovely,5,1,0,General,Tops,Blouses\n"
        "2,40,t,,4,1,0,General,Tops,Blouses\n"
        "3,50,t,Meh,3,0,0,General,Tops,Knits\n"
        "4,60,t,Awful,1,0,0,General,Tops,Knits\n"
        "5,60,t,Poor,2,0,0,General,Tops,Knits\n"
    )
    loaded = load_reviews(write(tmp_path, raw))
    assert loaded.layout == "raw"
    assert loaded.dropped_empty == 1
    assert loaded.frame["sentiment"].tolist() == [1, 0, -1, -1]
    assert loaded.frame["product_category"].tolist() == ["Blouses", "Knits", "Knits", "Knits"]


def test_rating_mapping_is_the_courses():
    assert [rating_to_sentiment(r) for r in (1, 2, 3, 4, 5)] == [-1, -1, 0, 1, 1]
    with pytest.raises(ValueError):
        rating_to_sentiment(6)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "data file not found: {p}; pass an existing CSV file"),
        ("", "{p} is empty; it needs a header row and at least one review"),
        (HEADER, "{p} has a header but no reviews; add data rows"),
        (
            "label,text\n1,hi\n",
            "{p}: missing column(s) sentiment, review_body, product_category; expected the course layout "
            "(sentiment, review_body, product_category) or the raw layout (Rating, Review Text, Class Name)",
        ),
        (
            HEADER + "1,fine,Dresses\n2,bad label,Dresses\n",
            "{p}: column 'sentiment' has values outside [-1, 0, 1] ('2') in 1 row(s) (data row 2); "
            "fix those rows or pass the label set with --labels",
        ),
        (
            HEADER + "1,,Dresses\n0,NaN,Knits\n1,ok,Knits\n",
            "{p}: column 'review_body' is empty in 2 row(s) (data row 1, 2); fill in or drop those rows",
        ),
        (
            HEADER + '1,"unterminated quote,Dresses\n0,x,Knits\n',
            "{p} is not a well-formed CSV (Error tokenizing data. C error: EOF inside string starting at row 1); "
            "check its quoting",
        ),
    ],
    ids=["missing-file", "empty-file", "header-only", "wrong-columns", "label-outside-set", "nan-text", "bad-quoting"],
)
def test_bad_input_has_one_clear_message(tmp_path, content, message):
    path = tmp_path / "reviews.csv"
    if content is not None:
        write(tmp_path, content)
    with pytest.raises(DataError) as info:
        load_reviews(path)
    assert str(info.value) == message.format(p=path)


def test_non_utf8_bytes_are_reported_with_line(tmp_path):
    path = write(tmp_path, HEADER.encode() + b"1,caf\xe9 dress,Dresses\n")
    with pytest.raises(DataError) as info:
        load_reviews(path)
    assert str(info.value) == f"{path} is not valid UTF-8 (byte 0xe9 on line 2); re-save it as UTF-8"


def test_custom_label_set(tmp_path):
    path = write(tmp_path, HEADER + "2,fine,Dresses\n0,ok,Knits\n")
    assert load_reviews(path, labels=(0, 1, 2)).frame["sentiment"].tolist() == [2, 0]
