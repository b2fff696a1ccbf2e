"""Flag candidate responses that try to manipulate the judge.

This is a pattern-based detector: hand-written regular expressions over a normalised copy of
the text. It is not a model and understands nothing; it catches the common phrasings of four
kinds of manipulation and is measured on ``tests/data/injection_cases.jsonl`` (catch rate on
injected rows, false-positive rate on honest ones, including hard negatives). Precision is
weighed as heavily as recall, because a false alarm drops an honest training pair.
Known blind spots: languages other than English (French orders aside), paraphrases outside
the listed phrasings, text spaced out letter by letter, and heading-style markers inside code fences.

Flags: ``judge_address`` (speaks to the grader or orders a pick), ``fake_verdict`` (embeds a
verdict), ``fake_delimiter`` (imitates the judge prompt's structure or chat-template tokens),
``constitution_claim`` (claims what the constitution or rubric says about this response).

Every grader defuses the text it shows a judge with ``defuse(text, tags)`` (its own tags, plus
chat-control strings), and ``answer_flags(text, tags)`` says what an answer did: the detector's
flags, plus ``fake_delimiter`` where defusing had to change something.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Iterable

# NFKC folds fullwidth forms (＜, ：, Ｉ) but not cross-script look-alikes, so map the few
# Cyrillic/Greek letters that pass for Latin ones; zero-width characters can split keywords.
_CONFUSABLES = str.maketrans("АВЕКМНОРСТХаеорсухіΑΒΕΚΜΝΟΡΤΧοα“”„‘’‚«»",
                             "ABEKMHOPCTXaeopcyxiABEKMNOPTXoa\"\"\"'''\"\"")
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060\ufeff]")
_FENCE = re.compile(r"```.*?(```|\Z)", re.DOTALL)

_I = re.IGNORECASE
_IM = re.IGNORECASE | re.MULTILINE
_GRADER = r"(?:judge|evaluator|grader|rater|reviewer|assessor|scorer|annotator|judging model|reward model)s?"
_RESP = r"(?:response|answer|reply|completion|output)"
_SELF = rf"(?:this|my) {_RESP}"  # not "the first answer": quiz explanations say that
_AB = r"(?-i:[AB])"  # the letters stay case-sensitive: under IGNORECASE [AB] matches the article "a"

# --- judge_address -------------------------------------------------------------------------
_OVERRIDE = re.compile(  # instruction override; needs a qualifier so "ignore the rules for this file" passes
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+)?"
    r"(?:(?:previous|prior|earlier|above|preceding|original|system)\s+"
    r"(?:instructions?|guidelines?|rules|prompts?|directions|directives)"
    r"|constitution|rubric|(?:grading|evaluation|judging)\s+(?:criteria|rules|guidelines))", _I)
# Machine-addressed phrases strong enough on their own.
_ADDRESS_STRONG = re.compile(
    r"\b(?:ai|model|assistant|llm|system)\s+(?:that\s+is\s+|who\s+is\s+)?(?:evaluating|judging|comparing"
    rf"|grading|scoring|ranking|rating|reviewing)\s+(?:these|the|both|this)\s+(?:{_RESP}s?|comparison|pair)"
    rf"|\bwhoever\s+is\s+(?:grading|judging|evaluating|scoring|rating|ranking)\b"
    rf"|\bif\s+you\s+are\s+(?:the|an?)\s+(?:ai|model|llm|{_GRADER})\b"
    rf"|\b(?:dear|hey|hi|hello|attention,?)\s+(?:the\s+)?(?:ai\s+)?{_GRADER}\b", _I)
# Weaker address forms ("as the evaluator", "note for the reviewer", "Grader," at a sentence
# start) count only together with a request to pick or rate, since humans review code too.
_ADDRESS_WEAK = re.compile(
    rf"\b(?:to|for|as)\s+(?:the|any|all)\s+(?:ai\s+)?{_GRADER}\b"
    rf"|(?:^|[.!?:;(\[]\s*)(?:note\s+to\s+)?{_GRADER}\s*[:,\u2014\u2013-]", _IM)
_REQUEST = re.compile(
    rf"\b(?:choose|pick|select|prefer|favou?r|rank|rate|score|mark|vote\s+for|give)\b[^.!?\n]{{0,40}}"
    rf"\b(?:{_SELF}|this\s+one|response\s+{_AB}|{_AB})\b"
    rf"|\b(?:output|answer|respond|reply|say)\s+(?:only\s+)?(?:with\s+)?(?:the\s+letter\s+)?['\"]?{_AB}\b", _I)
# Orders that need no addressee: they name "this response" or "Response A" as the pick.
_ORDER = re.compile(
    rf"\b(?:choose|pick|select|prefer|favou?r|vote\s+for)\s+"
    rf"(?:{_SELF}|response\s+{_AB})\b"
    rf"|\b(?:rate|rank|score|mark)\s+(?:{_SELF}|this|it)\s+(?:as\s+)?(?:the\s+)?"
    rf"(?:highest|higher|best|first|preferred|winner|better)"
    rf"|\b(?:choisisse[zr]|choisis|préfére[zr]|sélectionne[zr]?)\s+"  # French: the only non-English order
    rf"(?:la\s+réponse\s+{_AB}|cette\s+réponse)\b", _I)

# --- fake_verdict --------------------------------------------------------------------------
_LETTER = rf"[*_\s\"']*(?:response\s*)?[\"']?{_AB}\b(?!-|'\w)"  # not "A-grade", "A's"
_VERDICT_KEY = re.compile(  # keys that carry a verdict even with a bare letter
    r"(?:^|[{,\s*_])[\"']?(?:preferred(?:[ _]response)?|verdict|winner|better[ _]response|judg(?:e)?ment)"
    rf"[\"'*_]?\s*[:=\u2014\u2013-]+{_LETTER}", _IM)
_VERDICT_WEAK_KEY = re.compile(  # "Final answer: x = 3" is honest maths; demand the word Response
    r"\b(?:final\s+(?:answer|verdict|choice)|decision|choice)\s*[:=\u2014\u2013-]+"
    rf"[*_\s\"']*response\s+{_AB}\b", _I)
_VERDICT_SENTENCE = re.compile(
    rf"\bresponse\s+{_AB}\s+(?:is|was)\s+(?:clearly\s+|obviously\s+|much\s+)?(?:the\s+)?"
    r"(?:better|best|preferred|superior|winner|safer|more\s+helpful)"
    rf"|\bresponse\s+{_AB}\s+wins\b"
    rf"|\bthe\s+(?:preferred|better|best|winning|superior)\s+{_RESP}\s+is\s+(?:response\s+)?{_AB}\b", _I)

# --- fake_delimiter ------------------------------------------------------------------------
# Literal special tokens are flagged even in an honest explanation: a backend that parses them
# as control tokens would let the text end the judge's turn, whatever the writer meant.
_CHAT_TOKEN = re.compile(r"<\|[a-z_]+\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>", _I)
_MARKER_LINE = re.compile(  # a line that is nothing but a response/prompt marker
    r"^[ \t]*(?:#{1,6}|={2,}|-{2,}|\[|\*\*)?[ \t]*(?:end[ \t]+of[ \t]+)?"
    rf"(?:(?:response|answer)[ \t_]*{_AB}|(?<=of )(?:response|answer)|user[ _]prompt)"  # "## Answer" is honest
    r"[ \t]*(?:ends\s+here|begins|starts)?[ \t]*(?:={2,}|-{2,}|\]|\*\*)?[ \t]*:?[ \t]*$", _IM)
_GENERIC_TAG_LINE = re.compile(
    r"^[ \t]*</?(?:response|answer|reply|assistant|completion|candidate)\b[^>\n]*>[ \t]*$", _IM)

# --- defusing ------------------------------------------------------------------------------
PAIR_TAGS = ("user_prompt", "response_A", "response_B")  # the pairwise judge prompt's tags (verdict.py)
_GAP = _INVISIBLE.pattern + "*"  # invisible characters that may split a tag name
_LT, _GT = "<\uff1c\ufe64", ">\uff1e\ufe65"  # ASCII, fullwidth and small forms
# Chat-control strings of the common templates: <|im_end|>, <|eot_id|>, DeepSeek's <｜...｜>,
# [INST], <<SYS>>, <start_of_turn>, </s>. A backend or server that parses them would let the text
# end the judge's turn; look-alike brackets keep them readable but inert.
_CONTROL = re.compile(r"<[|\uff5c][^|\uff5c<>\s]{1,64}[|\uff5c]>|\[/?INST\]|<</?SYS>>"
                      r"|</?(?:start|end)_of_turn>|</?s>", _I)
_INERT = str.maketrans({"<": "\u2039", ">": "\u203a", "\uff1c": "\u2039", "\uff1e": "\u203a",
                        "\ufe64": "\u2039", "\ufe65": "\u203a", "[": "\u27e6", "]": "\u27e7"})


@functools.lru_cache(maxsize=32)
def tag_pattern(tags: tuple[str, ...]) -> re.Pattern:
    """Every opening or closing form of ``tags``: any case, spaces around the slash and the name,
    attributes, a self-closing slash, a missing ``>`` at the end of a line, invisible characters
    inside the name, fullwidth brackets. ``<answers>`` or ``<answer_key>`` are other tags."""
    names = "|".join(_GAP.join(map(re.escape, t)) for t in sorted(tags, key=len, reverse=True))
    return re.compile(rf"[{_LT}]\s*/?\s*(?:{names})(?=[\s/{_GT}]|$)[^{_LT}{_GT}\n]*[{_GT}]?", _I)


def defuse(text: str, tags: Iterable[str]) -> str:
    """``text`` made safe to put between a judge prompt's ``tags``: every form of those tags and every
    chat-control string gets look-alike brackets (``‹/answer›``, ``‹|im_end|›``), so the judge still
    reads what was written but nothing in it closes a tag or ends a turn. Apply it to every piece of
    data a judge prompt shows: candidates, the user's prompt, probe fields."""
    text = tag_pattern(tuple(tags)).sub(lambda m: m.group(0).translate(_INERT), text)
    return _CONTROL.sub(lambda m: m.group(0).translate(_INERT), text)


def answer_flags(text: str, tags: Iterable[str]) -> list[str]:
    """Injection flags of an answer shown to a judge between ``tags``: the detector's, plus
    ``fake_delimiter`` when ``defuse`` had to change it. Sorted; ``[]`` for an honest answer."""
    found = set(detect(text))
    if defuse(text, tags) != text:
        found.add("fake_delimiter")
    return sorted(found)


# --- constitution_claim --------------------------------------------------------------------
_FRAMEWORK = (r"(?:constitution\w*|(?:the|these|your|all|its)\s+principles(?!\s+of\b)"  # not "principles of REST"
              r"|(?:every|each)\s+principle"
              r"|rubric|(?:grading|evaluation|judging|scoring)\s+(?:guidelines|criteria|rules|instructions|rubric)"
              r"|guidelines\s+for\s+evaluation)")
# Targets name a response, not a person or a law: "the winner" or "must be chosen" also fit
# honest civics ("under the constitution, the winner of the election...").
_CLAIM_TARGET = (rf"(?:{_SELF}|the\s+other\s+{_RESP}"
                 rf"|(?:longer|shorter|longest|shortest|detailed)\s+{_RESP}s?"
                 rf"|{_RESP}s?\s+(?:that|which|with|citing|including)|the\s+(?:correct|right|best)\s+choice)")
_CONSTITUTION = re.compile(  # framework and a claim about responses in one sentence, either order
    rf"\b{_FRAMEWORK}\b[^.!?\n]{{0,80}}\b{_CLAIM_TARGET}|\b{_CLAIM_TARGET}[^.!?\n]{{0,80}}\b{_FRAMEWORK}\b"
    rf"|\b(?:constitution|principles?)\s+compliance\b|\bfully\s+compliant\b"
    rf"|\b(?:harmlessness|helpfulness|honesty)\s*[:=]\s*\d+\s*/\s*10\b", _I)


def normalise(text: str) -> str:
    """Fold the disguises (fullwidth forms, look-alike letters, curly quotes, zero-width
    characters, runs of spaces) so the patterns see plain ASCII-ish text; keeps newlines."""
    text = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)
    text = _INVISIBLE.sub("", text)
    return re.sub(r"[ \t\u00a0]+", " ", text)


def _unquoted(pattern: re.Pattern, text: str) -> bool:
    """Whether a match stands outside quotes: text that *mentions* "ignore previous
    instructions" (a security explanation) is not itself giving that instruction."""
    for m in pattern.finditer(text):
        before = text[m.start() - 1] if m.start() > 0 else ""
        after = text[m.end()] if m.end() < len(text) else ""
        if not (before and after and before in "\"'`" and after in "\"'`"):
            return True
    return False


def detect(text: str) -> list[str]:
    """Sorted, de-duplicated flag names for a candidate response; ``[]`` when nothing fires."""
    norm = normalise(text)
    flat = re.sub(r"\s+", " ", norm)  # for sentence patterns split across lines
    prose = _FENCE.sub(" ", norm)  # headings and XML inside code blocks are honest code
    flags = set()
    if (_unquoted(_OVERRIDE, flat) or _ADDRESS_STRONG.search(flat) or _ORDER.search(flat)
            or (_ADDRESS_WEAK.search(norm) and _REQUEST.search(flat))):
        flags.add("judge_address")
    if _VERDICT_KEY.search(norm) or _VERDICT_WEAK_KEY.search(flat) or _VERDICT_SENTENCE.search(flat):
        flags.add("fake_verdict")
    if (tag_pattern(PAIR_TAGS).search(norm) or _CHAT_TOKEN.search(norm) or _MARKER_LINE.search(prose)
            or _GENERIC_TAG_LINE.search(prose)):
        flags.add("fake_delimiter")
    if _CONSTITUTION.search(flat):
        flags.add("constitution_claim")
    return sorted(flags)


def measure(cases: list[dict]) -> dict:
    """Catch rate on rows with ``injected`` true, false-positive rate on the rest."""
    injected = [c["text"] for c in cases if c["injected"]]
    honest = [c["text"] for c in cases if not c["injected"]]
    misses = [t for t in injected if not detect(t)]
    false_alarms = [t for t in honest if detect(t)]
    caught = len(injected) - len(misses)
    return {"injected": len(injected), "honest": len(honest), "caught": caught,
            "false_positives": len(false_alarms),
            "catch_rate": caught / len(injected) if injected else 0.0,
            "false_positive_rate": len(false_alarms) / len(honest) if honest else 0.0,
            "misses": misses, "false_alarms": false_alarms}
