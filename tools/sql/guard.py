"""Input guard: refuse a question that asks to change data, reach outside the database, or hijack the model.

This is layer 1 of the defences (the static SQL policy in tools/sql/policy.py and the read-only DuckDB
sandbox in tools/sql/sandbox.py are layers 2 and 3). It runs before any LM call, so an injected
instruction never reaches a prompt, and it explains the refusal in one sentence.

`check_question` is a pure function over a table of English patterns. The text is first normalised:
NFKC (fullwidth letters become ASCII), zero-width and other invisible format characters removed,
casefolded, whitespace collapsed. Each rule is (code, reason, regex); the first match wins.

Codes:
  prompt_injection  - instructions aimed at the model ("ignore previous instructions", "you are now",
                      "system prompt", fake prompt-format markers, SQL-injection syntax such as `'; DROP`).
  write_request     - a request to change data, in words ("delete all players ...", "drop the Salaries
                      table", "add me to the People table", "modify the database") or as a literal SQL
                      write statement (UPDATE ... SET, INSERT INTO, DROP TABLE, ...).
  outside_database  - files, paths, URLs, fetching from the internet, extensions, environment variables, the
                      shell, processes, credentials, other databases, and the database's own settings.

The line between a request and a question: what the question asks the database (or the machine) to do
is judged, not what the user will do with the answer. "Save the 1998 standings to a CSV file",
"export the standings as a spreadsheet", "...and download the results" ask for rows, which the user
then keeps; they are allowed. A destination outside the answer is refused: a path or file name, the
server's disk or a folder, a bucket, a URL, an email address, another database, a table of this one.
So is fetching from outside ("download the latest release", "... from GitHub").

SQL typed into the question is judged by sqlglot (tools/sql/question_sql.py: the policy's node types
and function rules), after the patterns: COPY, ATTACH, PRAGMA, INSTALL, read_csv() are what they are,
whatever the English words "copy", "attach" or "load" mean in a question.

False positives matter as much as misses: a baseball question says "dropped", "traded", "drafted",
"record", "Mudcat Grant", "the biggest drop in ERA". So the ambiguous verbs (drop, update, delete,
remove, change, grant, create, truncate) count only in a data-changing sense: followed (within a few
words) by a storage noun (table, row, record(s) of the database, database, column, schema, ...) or in
SQL syntax. What the guard cannot see (paraphrases, other languages, obfuscation such as "d-r-o-p",
instructions hidden in database values) is left to layers 2 and 3 and to the answer prompt, which
treats rows as data.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, NamedTuple

from tools.sql.question_sql import sql_refusal

__all__ = ["GuardDecision", "RULES", "check_question", "normalise"]


GuardCode = Literal["prompt_injection", "write_request", "outside_database", "bad_input"]


class GuardDecision(NamedTuple):
    allowed: bool
    reason: str | None = None
    code: GuardCode | None = None


ALLOWED = GuardDecision(True, None, None)

# --- vocabulary shared by the rules (all lower case: the text is casefolded first) -------------------

_W = r"(?:\s+[^\s.?!;]+)"  # one more word, without crossing a sentence end
_STORAGE = r"(?:tables?|database|databases|db|schema|schemas|columns?|views?|index|indexes|indices)"
_ROWS = r"(?:rows?|records?|entries|entry|data|everything)"
_SQL_OBJECT = r"(?:table|view|schema|database|index|macro|function|sequence|type|secret|extension|role|user)"
# A second statement after `;` (DROP/DELETE/CREATE have their own, stricter rules below).
_SQL_STACKED = r"(?:insert|update|alter|truncate|attach|detach|install|pragma|grant|revoke|vacuum|checkpoint|merge|upsert)"

_RULES_SPEC: list[tuple[str, str, str]] = [
    # ---- prompt injection -------------------------------------------------------------------------
    ("prompt_injection", "tries to override the assistant's instructions",
     r"\b(?:ignore|disregard|forget|override|bypass)\b" + _W + r"{0,4}?\s+"
     r"(?:instructions?|prompts?|guidelines?|directives?|guardrails?|system\s+messages?|programming)\b"
     r"|\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+)?(?:of\s+)?(?:your|my|the\s+(?:above|previous|"
     r"prior|earlier)|previous|prior|earlier|all|any|these|those|safety|security)\s+(?:\w+\s+)?"
     r"(?:rules?|constraints?|restrictions?|polic(?:y|ies)|directions?|orders?|commands?)\b"),
    ("prompt_injection", "tries to override the assistant's instructions",
     r"\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+|anything\s+)?(?:(?:that\s+)?(?:was\s+|you\s+were\s+)?"
     r"(?:said|told)\s+)?(?:the\s+)?(?:above|previous(?:ly)?|prior|earlier|preceding|before)"
     r"(?:\s+(?:instructions?|messages?|text|context|prompts?|rules|commands?|directions?|content)\b"
     r"|\s*(?:[,.;:!]|$|\s+and\b))"),
    ("prompt_injection", "tries to override the assistant's instructions",
     r"\b(?:new|updated|revised|real|actual|hidden|secret|additional)\s+(?:system\s+)?instructions?\b"),
    ("prompt_injection", "tries to give the assistant a new role",
     r"\byou\s+are\s+(?:now|no\s+longer)\b|\bfrom\s+now\s+on,?\s+(?:you|act|behave|respond|answer)\b"
     r"|\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b|\broleplay\b|\brole-play\b"),
    ("prompt_injection", "tries to give the assistant a new role",
     r"\b(?:act|behave|respond|answer)\s+(?:as|like)\s+(?:if\s+you\s+were\s+|though\s+you\s+were\s+)?"
     r"(?:an?\s+|my\s+|the\s+)?(?:\w+\s+)?(?:admin|administrator|dba|root|superuser|sudo|developer|"
     r"unrestricted|unfiltered|uncensored|jailbroken|evil|hacker|dan)\b"),
    ("prompt_injection", "tries to switch the assistant into another mode",
     r"\b(?:developer|dan|god|admin|sudo|debug|maintenance|unrestricted|jailbreak)\s+mode\b|\bjailbr[eo]\w*"),
    ("prompt_injection", "asks about the assistant's hidden instructions",
     r"\bsystem\s+prompts?\b|\b(?:reveal|show|print|repeat|output|leak|dump|display|tell\s+me)\b" + _W
     + r"{0,3}?\s+(?:your|the)\s+(?:system\s+|initial\s+|original\s+|hidden\s+)?"
     r"(?:prompt|instructions|rules|guidelines|configuration)\b"),
    ("prompt_injection", "tries to turn off the safety checks",
     r"\b(?:disable|turn\s+off|switch\s+off|bypass|circumvent|get\s+around|escape|evade|skip|remove|lift)\s+"
     r"(?:the\s+|your\s+|any\s+|all\s+|its\s+)?(?:safety|security|sandbox|read[- ]only|policy|policies|"
     r"guard\w*|filters?|restrictions?|access\s+control|checks?|validation|timeout)\b"),
    ("prompt_injection", "imitates the model's prompt format",
     r"\[\[\s*##|<\|?\s*(?:system|im_start|im_end|assistant|user)\s*\|?>|(?:^|(?<![\w,])\s)(?:###\s*)?"
     r"(?:system|assistant)\s*:\s|\[/?inst\]|<</?sys>>"),
    ("prompt_injection", "contains SQL-injection syntax",
     r"'\s*\)*\s*;|'\s*(?:or|and)\s+'?[\w]+'?\s*=\s*'?[\w]+|\bor\s+'?1'?\s*=\s*'?1\b|;\s*--"),
    # ---- literal SQL that writes (also inside ```sql fences) --------------------------------------
    ("write_request", "contains a SQL statement that changes the database",
     r"\bdrop\s+(?:temp\w*\s+)?" + _SQL_OBJECT + r"\b"
     r"|\bdelete\s+from\b|\binsert\s+(?:or\s+\w+\s+)?into\b|\bmerge\s+into\b|\breplace\s+into\b|\bupsert\b"
     r"|\bupdate\s+[\w.\"]+\s+set\b|\balter\s+" + _SQL_OBJECT + r"\b"
     r"|\bcreate\s+(?:or\s+replace\s+)?(?:temp\w*\s+|unique\s+|persistent\s+)?" + _SQL_OBJECT + r"\b"
     r"|\btruncate\s+(?:table\s+)?[\w.\"]+\s*(?:;|$|\))|\b(?:grant|revoke)\s+(?:all|select|insert|update|"
     r"delete|usage|create|execute|privileges?)(?![\w-])"
     r"|\b(?:vacuum|checkpoint)\s*(?:;|$)|\bset\s+(?:global\s+|session\s+)?[a-z_]+\s*="
     r"|;\s*" + _SQL_STACKED + r"\b|\bcall\s+\w+\s*\("),
    # ---- write intent in words --------------------------------------------------------------------
    ("write_request", "asks to change the database, which is read-only",
     r"\b(?:drop(?!\s+(?:in|of|off|from|to|by)\b)|delete|truncate|remove|erase|wipe|purge|destroy|nuke|rename)\b"
     + _W
     + r"{0,3}?\s+" + _STORAGE + r"\b"),
    ("write_request", "asks to change the database, which is read-only",
     r"\b(?:delete|erase|wipe|purge|nuke)\b" + _W + r"{0,3}?\s+" + _ROWS + r"\b"
     r"|\bremove\s+(?:all|every)\s+(?:the\s+|of\s+the\s+)?(?:rows?|records?|data|entries|entry)\b"
     r"|\bremove\s+everything\b"),
    ("write_request", "asks to change the database, which is read-only",
     r"\b(?:delete|purge)\s+(?:all|every|each|any|the|these|those|them|it|his|her|their|my|some)\b"
     r"|(?:^|[.;:!?]\s*|\b(?:please|pls|now|then|and|also|you\s+must|can\s+you|could\s+you|would\s+you|"
     r"will\s+you|i\s+want\s+you\s+to|i\s+need\s+you\s+to|go\s+ahead\s+and)\s+)(?:delete|truncate|purge)(?![\w-])"),
    ("write_request", "asks to change the database, which is read-only",
     r"\b(?:update|modify|alter|edit|overwrite|change|tamper\s+with|corrupt|mutate|fix|correct|falsify)\s+"
     r"(?:the\s+|this\s+|that\s+|a\s+|an\s+|any\s+|some\s+|its\s+|their\s+|his\s+|her\s+)?(?:[\w'-]+\s+){0,2}"
     r"(?:tables?|database|db|data|rows?|schema|entries|entry|records?\s+(?:in|of)\s+"
     r"the\s+(?:database|db|table))\b"),
    ("write_request", "asks to change the database, which is read-only",
     r"\b(?:update|overwrite|set)\b[^.?!]{0,60}?\s(?:to|=)\s*(?:\d|'|\")(?=[^.?!]{0,40}"
     r"(?:\bin\s+the\s+(?:database|db|table)|\btable\b))"
     r"|\bupdate\b[^.?!]{0,60}?\b(?:record|stats?|statistics|row|entry|value|total)s?\s+(?:to|=)\s*[\d'\"]"),
    ("write_request", "asks to change the database, which is read-only",
     r"\b(?:add(?!\s+up\b)|insert|put|append|save|store|inject|load|import|copy)\b" + _W + r"{0,6}?\s+"
     r"(?:to|into|in|onto)\s+(?:(?:the|this|your|my|our)\s+(?:[\w'-]+\s+)?|(?:an?\s+)?(?:new|another|separate|"
     r"temp\w*)\s+(?=table\b)|(?:an?\s+)?(?=(?:table|database|db)\s+(?:called|named)\b))(?:table|database|db)\b"),
    ("write_request", "asks to change the database, which is read-only",
     r"\binsert\s+(?:a|an|new|the|me|my|this|these|rows?|records?|data)\b"
     r"|\bcreate\s+(?:a\s+|an\s+)?(?:new\s+)?(?:temp\w*\s+)?(?:table|view)\s+(?:called|named|in|inside)\b"
     r"|\bcreate\s+(?:a\s+|an\s+)?(?:new\s+)?(?:database|schema|index|macro|user|role)\b"
     r"|\b(?:modify|change|alter|write\s+to|tamper\s+with)\s+(?:the\s+)?(?:database|db)\b"
     r"|\b(?:grant|give)\s+(?:me|us|myself|the\s+\w+|\w+)\s+(?:write|admin|full|all|root|superuser|elevated)\s+"
     r"(?:access|privileges?|permissions?|rights|roles?)\b"
     r"|\b(?:change|switch|escalate|elevate|upgrade)\s+(?:my\s+|the\s+|your\s+)?(?:role|permissions?|"
     r"privileges?|access\s+level)\b"),
    # ---- outside the database ---------------------------------------------------------------------
    ("outside_database", "asks for files, the network or the system outside the database",
     r"\bfile://|\b(?:https?|ftp|sftp|s3|gs|gcs|az|azure|abfss?|hf|r2)://|\bwww\.[a-z0-9-]+\.[a-z]"),
    ("outside_database", "asks for files, the network or the system outside the database",
     r"(?:^|[\s'\"(=`])(?:/etc|/proc|/sys|/dev|/home|/root|/tmp|/var|/usr|/bin|/opt|/mnt|/srv|/boot|~/|\.\./"
     r"|[a-z]:\\)"),
    ("outside_database", "asks for files, the network or the system outside the database",
     r"\b[\w-]+\.(?:csv|tsv|parquet|json|jsonl|ndjson|txt|xlsx?|sh|bash|py|env|ini|conf|cfg|log|key|pem|"
     r"sqlite3?|duckdb|db|yaml|yml|toml|pdf|zip|gz)\b"),
    ("outside_database", "asks for files, the network or the system outside the database",
     r"\b(?:read|open|cat|dump|load|import|access|view|browse)\b" + _W
     + r"{0,3}?\s+(?:the|a|an|this|that|any|some|my|your|all|these|those)\s+(?:[\w-]+\s+)?"
     r"(?:files?|director(?:y|ies)|folders?|filesystem|file\s+system|disk)\b"
     r"|\b(?:show|display|print|list|fetch|get|find)\b" + _W
     + r"{0,3}?\s+(?:the|any|some|my|your|all|these|those)\s+(?:[\w-]+\s+)?"
     r"(?:files|director(?:y|ies)|folders?|filesystem|file\s+system|disk)\b"
     r"|\bcontents?\s+of\s+(?:the\s+|a\s+|this\s+|that\s+|your\s+|my\s+)?(?:[\w-]+\s+)?(?:files?|director(?:y|ies)|"
     r"folders?)\b"
     r"|\b(?:save|write|export|dump|copy|send|email|e-mail|upload|post)\b" + _W + r"{0,6}?\s+"
     r"(?:to|into|as|in|on)\s+(?:a\s+|the\s+|my\s+|your\s+|an?\s+)?(?:[\w-]+\s+)?(?:disk|drive|folder|directory|"
     r"path|server|host|machine|filesystem|url|webhook|website|email|e-mail|inbox|bucket|cloud|s3|ftp)\b"
     r"|\bfiles?\s+(?:called|named)\b|(?:^|[.;:!?]\s*|\b(?:please|and|then|also)\s+)e-?mail\b"
     r"|[\w.+-]+@[\w-]+\.[a-z]{2,}"),
    ("outside_database", "asks for files, the network or the system outside the database",
     r"\bdownload\w*\b(?=[^.?!]{0,60}?\b(?:(?:from|off|via)\s+(?:the\s+|a\s+|an\s+|my\s+|your\s+)?(?:internet|"
     r"web|net|online|url|link|site|website|server|github|cloud|bucket|remote|external|outside)|releases?|"
     r"versions?|packages?|extensions?|plugins?|installers?|weights|datasets?)\b)|\bupload\w*|\binstall\b|\b(?:load|enable|add)\s+(?:the\s+|an?\s+)?(?:\w+\s+)?"
     r"(?:extensions?|plugins?|packages?|modules?|librar(?:y|ies))\b|\bextensions?\s+(?:httpfs|sqlite|postgres|"
     r"mysql|spatial|excel|fts)\b|\bhttpfs\b"),
    ("outside_database", "asks for files, the network or the system outside the database",
     r"\b(?:export|copy)\b" + _W + r"{0,5}?\s+(?:to|into)\s+(?:another|other|a\s+different|an?\s+external|"
     r"a\s+second|my|your)\s+(?:\w+\s+)?(?:database|db|server|machine|computer|system)\b"
     r"|\bwith\s+copy\b|\bcopy\s+\(?\s*select\b|\bexport\s+database\b"
     r"|\b(?:attach|connect\s+to|open)\s+(?:to\s+)?(?:another|other|a\s+different|an?\s+external|a\s+second|"
     r"a\s+new|my|your)\s+(?:\w+\s+)?(?:database|db|server)\b"
     r"|\battach\b" + _W + r"{0,4}?\s+(?:as\s+)?(?:an?\s+|the\s+)?(?:\w+\s+)?(?:database|db|schema|file)\b"
     r"|\battach\s+(?:database\s+)?['\"]"),
    ("outside_database", "asks for files, the network or the system outside the database",
     r"\benvironment(?:al)?\s+variables?\b|\benv\s+vars?\b|\bgetenv\b|\$\{?[a-z_]+\b"
     r"|\b(?:api|secret|access|private|ssh)\s+keys?\b|\bpasswords?\b|\bcredentials?\b"),
    ("outside_database", "asks for files, the network or the system outside the database",
     r"\bshell\b|\bbash\b(?!\s+brothers)|\bterminal\b|\bcommand[\s-]line\b|\bsubprocess\b|\bos\.system\b|\bpowershell\b"
     r"|\bcmd\.exe\b|\brm\s+-rf\b|\bsudo\b|\bcurl\b|\bwget\b|\bnetcat\b|\bping\s+\S+\.\w"
     r"|\b(?:execute|run|launch|spawn)\s+(?:a\s+|an\s+|the\s+|this\s+|these\s+|some\s+|my\s+|arbitrary\s+)?"
     r"(?:\w+\s+)?(?:commands?|scripts?|code|python|binary|executable)\b"
     r"|\b(?:kill|terminate|shut\s+down|restart|reboot|crash)\s+(?:the\s+|a\s+|this\s+|your\s+|all\s+|every\s+)?"
     r"(?:\w+\s+){0,2}(?:process(?:es)?|server|database|db|connections?|sessions?|pid|machine|sandbox|quer(?:y|ies)|"
     r"jobs?|threads?)\b"),
    ("outside_database", "asks for the database's own settings, not its data",
     r"\b(?:settings?|configuration|config|pragmas?|version|memory\s+limit|extensions|users|permissions|"
     r"privileges|secrets|internals|catalog)\s+(?:of|for|in|on)\s+(?:the\s+|this\s+|your\s+)?"
     r"(?:database|db|duckdb|server|system|sandbox|connection|engine)\b"
     r"|\b(?:database|db|duckdb|server|system|sandbox|connection|engine)(?:'s)?\s+(?:settings?|configuration|"
     r"config|pragmas?|version|memory\s+limit|extensions|users|permissions|privileges|secrets|internals|"
     r"catalog|variables)\b"
     r"|\b(?:current_setting|duckdb_\w+|information_schema|pg_catalog|sqlite_master|pragma_\w+|"
     r"read_csv\w*|read_parquet|read_json\w*|read_text|read_blob|parquet_scan|sqlite_scan|postgres_scan|"
     r"http_get|glob\s*\()"),
]  # fmt: skip

RULES: list[tuple[str, str, re.Pattern[str]]] = [
    (code, reason, re.compile(pattern)) for code, reason, pattern in _RULES_SPEC
]

_SPACE = re.compile(r"\s+")
_SQL_REASONS = {
    "write_request": "contains a SQL statement that changes the database",
    "outside_database": "contains SQL that reaches outside the database (files, settings, other databases)",
}


def _visible(text: str) -> str:
    """NFKC, invisible format/control characters removed, curly quotes made straight; case and lines kept."""
    text = unicodedata.normalize("NFKC", text)
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cf" or (cat == "Cc" and not ch.isspace()):
            continue  # zero-width space/joiner, BOM, bidi overrides, soft hyphen, NUL ...
        kept.append(ch)
    # Curly quotes and apostrophes behave like ASCII ones for the SQL-ish rules.
    return "".join(kept).translate(
        str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
    )


def normalise(text: str) -> str:
    """NFKC, invisible format/control characters removed, casefolded, whitespace collapsed."""
    return _SPACE.sub(" ", _visible(text).casefold()).strip()


def check_question(text: str) -> GuardDecision:
    """Allow the question, or refuse it with a one-sentence reason and a code (see the module docstring)."""
    if not isinstance(text, str):
        return GuardDecision(False, "The question must be text.", "bad_input")
    norm = normalise(text)
    for code, reason, pattern in RULES:
        match = pattern.search(norm)
        if match:
            quoted = match.group(0).strip()[:60]
            return GuardDecision(False, f'The question {reason} ("{quoted}").', code)
    found = sql_refusal(_visible(text))
    if found:
        code, what = found
        reason = _SQL_REASONS[code]
        return GuardDecision(False, f"The question {reason} (SQL: {what}).", code)
    return ALLOWED
