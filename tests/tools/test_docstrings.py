"""tim/tools/docstrings.py: summaries and parameter descriptions from numpydoc and Google."""

from tim.tools import tool_spec
from tim.tools.docstrings import Docstring, parse_docstring


def test_empty_and_missing():
    assert parse_docstring(None) == Docstring("", {})
    assert parse_docstring("") == Docstring("", {})


def test_summary_is_the_first_paragraph_joined():
    doc = """Find the roots
    of a polynomial.

    More detail that is not part of the summary.
    """
    assert parse_docstring(doc).summary == "Find the roots of a polynomial."


def test_numpydoc_parameters_with_multiline_and_shared_entries():
    doc = """Scale points.

    Parameters
    ----------
    xs, ys : list of float
        Coordinates,
        one per point.

        A second paragraph.
    factor : float, optional
        How much.
    *rest
        Ignored extras.

    Returns
    -------
    list
        factor : not a parameter
    """
    parsed = parse_docstring(doc)
    assert parsed.summary == "Scale points."
    assert parsed.params == {
        "xs": "Coordinates, one per point. A second paragraph.",
        "ys": "Coordinates, one per point. A second paragraph.",
        "factor": "How much.",
        "rest": "Ignored extras.",
    }


def test_google_args_stop_at_the_next_section():
    doc = """Send a message.

    Args:
        to (str): Recipient
            address.
        body: The text.
        urgent (bool, optional): Flag.

    Returns:
        bool: whether it was sent.

    Raises:
        ValueError: never a parameter.
    """
    assert parse_docstring(doc).params == {
        "to": "Recipient address.", "body": "The text.", "urgent": "Flag."}


def test_summary_stops_at_a_section_heading_without_a_blank_line():
    assert parse_docstring("Do it.\nArgs:\n    x: the x\n") == Docstring("Do it.", {"x": "the x"})
    assert parse_docstring("Parameters\n----------\nx : int\n    An x.\n") == Docstring(
        "", {"x": "An x."})


def test_descriptions_reach_the_schema_and_annotated_wins():
    from typing import Annotated

    def send(to: str, body: Annotated[str, "From Annotated."], urgent: bool = False) -> bool:
        """Send a message.

        Args:
            to: Recipient.
            body: From the docstring.
        """
        return True

    spec = tool_spec(send)
    assert spec.description == "Send a message."
    assert spec.parameters["properties"] == {
        "to": {"type": "string", "description": "Recipient."},
        "body": {"type": "string", "description": "From Annotated."},
        "urgent": {"type": "boolean", "default": False},
    }
