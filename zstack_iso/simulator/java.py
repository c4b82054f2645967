"""Java's string and number semantics where the node's answers depend on them (String.trim, String.split,
commons-lang, SystemTagUtils, Integer.valueOf)."""

from __future__ import annotations


def java_trim(text: str) -> str:
    """Java's String.trim(): strips the characters <= U+0020 at both ends (not other Unicode whitespace)."""
    return text.strip("".join(chr(c) for c in range(33)))


def java_split(text: str, separator: str) -> list[str]:
    """Java's String.split with a literal separator: trailing empty strings are dropped; no match gives [text]."""
    if separator not in text:
        return [text]
    parts = text.split(separator)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def find_tag_value(system_tags: list[str], tag_format: str, token: str) -> str | None:
    """SystemTagUtils.findTagValue (SystemTagUtils.java:19-31 @ 5a29293): the token's value in the first tag that
    TagUtils.isMatch accepts (TagUtils.java:33-67): same first character, as many `::` parts as the format (after
    Java's split), literal parts equal. So `cdromUuid::` and `cdromUuid::a::b` are not cdromUuid tags at all."""
    fmt = java_split(tag_format, "::")
    for tag in system_tags:
        if tag and tag[0] != tag_format[0]:
            continue
        parts = java_split(tag, "::")
        if len(parts) != len(fmt):
            continue
        if all(f.startswith("{") or f == p for f, p in zip(fmt, parts, strict=True)):
            return parts[fmt.index("{" + token + "}")]
    return None


def split_by_whole_separator(text: str, separator: str, limit: int) -> list[str]:
    """commons-lang StringUtils.splitByWholeSeparator(text, separator, limit): adjacent separators are one and
    a leading separator gives no empty token, but a trailing one does (`name=` is `["name", ""]`)."""
    out: list[str] = []
    beg = end = 0
    while end < len(text):
        end = text.find(separator, beg)
        if end < 0:
            out.append(text[beg:])
            end = len(text)
        elif end > beg:
            if len(out) + 1 == limit:
                out.append(text[beg:])
                end = len(text)
            else:
                out.append(text[beg:end])
                beg = end + len(separator)
        else:
            beg = end + len(separator)
    return out


def java_parse_int(text: str) -> int | None:
    """Java's Integer.valueOf: an optional sign and decimal digits in the int range; None where Java throws."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not all(c.isdecimal() for c in digits):
        return None
    value = -int(digits) if text[0] == "-" else int(digits)
    return value if -(2**31) <= value < 2**31 else None
