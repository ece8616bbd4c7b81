"""Column names as concepts: case, separators, camelCase, accents, abbreviations and a small
multilingual synonym list folded into canonical English tokens, compared with weights."""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from functools import lru_cache

# Each canonical concept with the words (English, Portuguese, Spanish) and abbreviations that
# mean it. A word belongs to one concept only.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": ("name", "nome", "nombre", "holder", "nm", "nam", "titular"),
    "first": ("first", "primeiro", "given", "fname"),
    "surname": ("surname", "sobrenome", "apellido", "apellidos", "lname", "lastname"),
    "email": ("email", "mail", "correo", "emails", "mails", "eml"),
    "country": ("country", "pais", "ctry", "cntry", "nation", "land"),
    "birth": ("birth", "nascimento", "nacimiento", "born", "birthday", "aniversario"),
    "date": ("date", "data", "fecha", "dt", "dte", "day", "dia"),
    "phone": (
        "phone",
        "telefone",
        "telefono",
        "tel",
        "fone",
        "telephone",
        "mobile",
        "celular",
        "cell",
        "movil",
        "ph",
    ),
    "city": ("city", "cidade", "ciudad", "town", "municipio", "localidad"),
    "address": ("address", "endereco", "direccion", "addr", "morada", "domicilio", "street"),
    "postal": ("postal", "zip", "zipcode", "cep", "postcode", "postalcode"),
    "state": ("state", "estado", "province", "provincia", "uf", "region"),
    "customer": ("customer", "cliente", "client", "cust", "cli", "clients", "customers"),
    "product": ("product", "produto", "producto", "prod", "item", "sku", "article", "articulo"),
    "order": ("order", "pedido", "orden", "ord", "purchase", "compra"),
    "employee": ("employee", "funcionario", "empleado", "staff", "emp", "worker"),
    "supplier": ("supplier", "fornecedor", "proveedor", "vendor"),
    "person": ("person", "pessoa", "persona", "people", "individual"),
    "gender": ("gender", "sexo", "sex", "genero"),
    "created": ("created", "criado", "creado", "criacao", "creacion", "registered", "cadastro"),
    "updated": ("updated", "atualizado", "actualizado", "modified", "changed"),
    "count": ("count", "cnt", "quantidade", "cantidad", "qty", "quantity", "num", "total"),
    "number": ("number", "numero", "no", "nr", "nbr"),
    "identifier": ("id", "ident", "identifier", "key"),
    "code": ("code", "codigo", "cod", "cd"),
    "price": ("price", "preco", "precio", "cost", "custo", "costo"),
    "amount": ("amount", "amt", "valor", "importe", "monto", "val"),
    "description": ("description", "descricao", "descripcion", "desc", "descr"),
    "language": ("language", "idioma", "lingua", "lang", "locale"),
    "currency": ("currency", "moeda", "moneda", "ccy", "cur"),
    "age": ("age", "idade", "edad"),
    "company": ("company", "empresa", "firm", "organization", "organisation", "org"),
    "status": ("status", "situacao"),
    "tax": ("tax", "vat", "nif", "cpf", "cnpj", "ssn", "imposto", "impuesto"),
}

# Several words that together mean one concept (after synonyms), longest first.
_PHRASES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("e", "email"): ("email",),
    ("date", "birth"): ("birth", "date"),
    ("birth", "date"): ("birth", "date"),
    ("date", "of", "birth"): ("birth", "date"),
    ("last", "name"): ("surname",),
    ("family", "name"): ("surname",),
    ("full", "name"): ("name",),
    ("first", "name"): ("first", "name"),
    ("given", "name"): ("first", "name"),
    ("zip", "code"): ("postal",),
    ("email", "address"): ("email",),
    ("email", "electronico"): ("email",),
    ("email", "eletronico"): ("email",),
    ("phone", "number"): ("phone",),
    ("name", "completo"): ("name",),
    ("name", "complete"): ("name",),
    ("postal", "code"): ("postal",),
    ("dob",): ("birth", "date"),
    ("nasc",): ("birth",),
    ("nac",): ("birth",),
}

# Words that say little on their own: they count less in a comparison.
GENERIC = frozenset(
    {"date", "code", "identifier", "number", "type", "value", "at", "flag", "info", "iso"}
)
_STOP = frozenset({"de", "do", "da", "dos", "das", "del", "la", "el", "of", "the", "a", "o", "y"})
# Concepts naming what a table is about; two different ones mean different things.
ENTITIES = frozenset({"customer", "product", "order", "employee", "supplier", "company"})

_CANONICAL: dict[str, str] = {
    word: concept for concept, words in _SYNONYMS.items() for word in (concept, *words)
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT = re.compile(r"[^a-z0-9]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])")


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """Lower-case ASCII words of a name: camelCase, separators, digits and accents split
    (``"dataNascimento"`` and ``"data_nascimento"`` give the same words)."""
    plain = strip_accents(text)
    plain = _CAMEL.sub(" ", plain).lower()
    return [w for w in _SPLIT.split(plain) if w]


def _canonical(word: str) -> str | None:
    for form in (word, word[:-1] if word.endswith("s") else None, word[:-2]):
        if form and len(form) >= 2 and form in _CANONICAL:
            if form != word and len(word) <= 3:  # "us" is not "u"
                continue
            return _CANONICAL[form]
    return None


def _segment(word: str) -> list[str] | None:
    """A run-together name (``"birthdate"``, ``"customername"``) cut into two known words."""
    if len(word) < 6 or _canonical(word):
        return None
    for cut in range(len(word) - 2, 2, -1):
        head, tail = word[:cut], word[cut:]
        if _canonical(head) and _canonical(tail):
            return [head, tail]
    return None


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@lru_cache(maxsize=65536)
def concepts(text: str) -> tuple[str, ...]:
    """The canonical concept tokens of a name or a short text, in order, without repeats.

    >>> concepts("dtNascimento"), concepts("e_mail"), concepts("País")
    (('birth', 'date'), ('email',), ('country',))
    """
    raw: list[str] = []
    for word in words(text):
        raw.extend(_segment(word) or [word])
    mapped = [_canonical(w) or _stem(w) for w in raw if w not in _STOP]
    tokens: list[str] = []
    index = 0
    while index < len(mapped):
        for size in (3, 2, 1):
            phrase = tuple(mapped[index : index + size])
            if len(phrase) == size and phrase in _PHRASES:
                tokens.extend(_PHRASES[phrase])
                index += size
                break
        else:
            tokens.append(mapped[index])
            index += 1
    return tuple(dict.fromkeys(t for t in tokens if t))


def weight(token: str) -> float:
    return 0.4 if token in GENERIC or len(token) <= 1 else 1.0


@lru_cache(maxsize=65536)  # names repeat across thousands of columns: compare each pair once
def _token_match(a: str, b: str) -> float:
    """1 for the same concept; less for a prefix abbreviation (``addr``) or a near spelling."""
    if a == b:
        return 1.0
    if len(a) >= 5 and len(b) >= 5 and _near_spelling(a, b):
        return 0.8
    short, long_ = sorted((a, b), key=len)
    if len(short) >= 3 and long_.startswith(short) and short not in _CANONICAL:
        return 0.7
    return 0.0


def any_token_matches(tokens: tuple[str, ...], others: frozenset[str]) -> bool:
    """Whether a token of ``tokens`` matches one of ``others`` at all (the same concept, an
    abbreviation or a near spelling): ``similarity`` is 0 where none does."""
    return any(_token_match(a, b) > 0 or _token_match(b, a) > 0 for a in tokens for b in others)


def _near_spelling(a: str, b: str) -> bool:
    # SequenceMatcher's real_quick_ratio bound, without building a matcher: most pairs of
    # words differ too much in length to come near.
    if 2.0 * min(len(a), len(b)) / (len(a) + len(b)) < 0.85:
        return False
    matcher = SequenceMatcher(None, a, b)
    return (
        matcher.real_quick_ratio() >= 0.85
        and matcher.quick_ratio() >= 0.85
        and (matcher.ratio() >= 0.85)
    )


def _best(token: str, others: tuple[str, ...]) -> float:
    return max(_token_match(token, other) * min(weight(token), weight(other)) for other in others)


@lru_cache(maxsize=65536)
def similarity(left: tuple[str, ...], right: tuple[str, ...]) -> float:
    """Weighted Dice coefficient of two concept tuples, in [0, 1] (best match per token)."""
    if not left or not right:
        return 0.0
    matched = sum(_best(token, right) for token in left) + sum(_best(t, left) for t in right)
    total = sum(weight(t) for t in left) + sum(weight(t) for t in right)
    return min(matched / total, 1.0)


def entities(tokens: tuple[str, ...]) -> frozenset[str]:
    return frozenset(t for t in tokens if t in ENTITIES)


def safe_name(tokens: tuple[str, ...]) -> str:
    """A unified column name from concept tokens (letters, digits and _, at most 63)."""
    name = "_".join(t for t in tokens if re.fullmatch(r"[a-z0-9]+", t))[:63].strip("_")
    if not name or name[0].isdigit():
        name = f"column_{name}".strip("_")
    return name
