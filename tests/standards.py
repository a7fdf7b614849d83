"""JSON Schemas of what the learning-record standards require, for tests of ``bridge export``.

Each schema encodes the fields a specification marks as required, and the shapes it fixes:

- Open Badges 3.0 (1EdTech), ``AchievementCredential`` and the classes it uses (``Profile``,
  ``AchievementSubject``, ``IdentityObject``, ``Achievement``, ``Result``,
  ``ResultDescription``), on the VC 2.0 data model (``validFrom``, the ``@context`` order).
- CLR 2.0 (1EdTech), ``ClrCredential`` / ``ClrSubject``: ``@context`` starts with the VC 2.0,
  CLR 2.0.1 and OB 3.0.3 contexts; ``verifiableCredential`` holds at least one credential.
- xAPI 1.0.3 (ADL), Statement: actor, verb and object are required; an Agent has exactly one
  inverse functional identifier; an account has ``homePage`` and ``name``; scores and
  language maps have fixed shapes.
"""

from __future__ import annotations

from typing import Any

from bridge.tools.export import CLR_CONTEXT, OB_CONTEXT


def _type_contains(*names: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "allOf": [{"contains": {"const": n}} for n in names]}


# -- Open Badges 3.0 -----------------------------------------------------------------------------

PROFILE = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {"id": {"type": "string", "format": "uri"}, "type": _type_contains("Profile"), "name": {"type": "string"}},
}
IDENTITY_OBJECT = {
    "type": "object",
    "required": ["type", "hashed", "identityHash", "identityType"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "IdentityObject"},
        "hashed": {"type": "boolean"},
        "identityHash": {"type": "string"},
        "identityType": {"type": "string"},
        "salt": {"type": "string"},
    },
}
RESULT_DESCRIPTION = {
    "type": "object",
    "required": ["id", "type", "name", "resultType"],
    "properties": {"type": _type_contains("ResultDescription"), "resultType": {"type": "string"}},
}
ACHIEVEMENT = {
    "type": "object",
    "required": ["id", "type", "criteria", "description", "name"],
    "properties": {
        "id": {"type": "string", "format": "uri"},
        "type": _type_contains("Achievement"),
        "criteria": {"type": "object", "anyOf": [{"required": ["id"]}, {"required": ["narrative"]}]},
        "humanCode": {"type": "string"},
        "achievementType": {"type": "string"},
        "resultDescription": {"type": "array", "items": RESULT_DESCRIPTION},
    },
}
RESULT = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": _type_contains("Result"),
        "status": {"enum": ["Completed", "Enrolled", "Failed", "InProgress", "OnHold", "Provisional", "Withdrew"]},
        "value": {"type": "string"},
        "resultDescription": {"type": "string"},
    },
}
ACHIEVEMENT_SUBJECT = {
    "type": "object",
    "required": ["type", "achievement"],
    # "Either id or at least one identifier MUST be supplied."
    "anyOf": [{"required": ["id"]}, {"required": ["identifier"], "properties": {"identifier": {"minItems": 1}}}],
    "properties": {
        "type": _type_contains("AchievementSubject"),
        "identifier": {"type": "array", "items": IDENTITY_OBJECT},
        "achievement": ACHIEVEMENT,
        "creditsEarned": {"type": "number"},
        "result": {"type": "array", "items": RESULT},
        "activityStartDate": {"type": "string", "format": "date-time"},
        "activityEndDate": {"type": "string", "format": "date-time"},
    },
}
ACHIEVEMENT_CREDENTIAL = {
    "type": "object",
    "required": ["@context", "id", "type", "name", "credentialSubject", "issuer", "validFrom"],
    "properties": {
        "@context": {
            "type": "array",
            "prefixItems": [{"const": OB_CONTEXT[0]}, {"const": OB_CONTEXT[1]}],
            "minItems": 2,
        },
        "id": {"type": "string", "format": "uri"},
        "type": {
            "type": "array",
            "contains": {"const": "VerifiableCredential"},
            "anyOf": [{"contains": {"const": "AchievementCredential"}}, {"contains": {"const": "OpenBadgeCredential"}}],
        },
        "name": {"type": "string", "minLength": 1},
        "issuer": PROFILE,
        "validFrom": {"type": "string", "format": "date-time"},
        "awardedDate": {"type": "string", "format": "date-time"},
        "credentialSubject": ACHIEVEMENT_SUBJECT,
    },
}
CLR_CREDENTIAL = {
    "type": "object",
    "required": ["@context", "id", "type", "name", "credentialSubject", "issuer", "validFrom"],
    "properties": {
        "@context": {
            "type": "array",
            "prefixItems": [{"const": c} for c in CLR_CONTEXT],
            "minItems": 3,
        },
        "type": _type_contains("VerifiableCredential", "ClrCredential"),
        "issuer": PROFILE,
        "validFrom": {"type": "string", "format": "date-time"},
        "credentialSubject": {
            "type": "object",
            "required": ["type", "verifiableCredential"],
            "anyOf": [{"required": ["id"]}, {"required": ["identifier"]}],
            "properties": {
                "type": _type_contains("ClrSubject"),
                "identifier": {"type": "array", "minItems": 1, "items": IDENTITY_OBJECT},
                "verifiableCredential": {"type": "array", "minItems": 1, "items": ACHIEVEMENT_CREDENTIAL},
                "achievement": {"type": "array", "items": ACHIEVEMENT},
            },
        },
    },
}

# -- xAPI 1.0.3 ----------------------------------------------------------------------------------

_IRI = {"type": "string", "pattern": r"^[a-zA-Z][a-zA-Z0-9+.\-]*:"}
_LANGUAGE_MAP = {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}
XAPI_STATEMENT = {
    "type": "object",
    "required": ["actor", "verb", "object"],
    # The properties a Statement may have (xAPI 1.0.3, Data §2.4): nothing else.
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"},
        "actor": {
            "type": "object",
            "required": ["account"],
            "additionalProperties": False,
            # An Agent: exactly one inverse functional identifier; here the account, so no
            # mbox, mbox_sha1sum or openid, and no name (it would be personal data).
            "properties": {
                "objectType": {"const": "Agent"},
                "account": {
                    "type": "object",
                    "required": ["homePage", "name"],
                    "additionalProperties": False,
                    "properties": {"homePage": {"type": "string", "pattern": "^https?://"}, "name": {"type": "string"}},
                },
            },
        },
        "verb": {
            "type": "object",
            "required": ["id"],
            "additionalProperties": False,
            "properties": {"id": _IRI, "display": _LANGUAGE_MAP},
        },
        "object": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "objectType": {"const": "Activity"},
                "id": _IRI,
                "definition": {
                    "type": "object",
                    "properties": {"type": _IRI, "name": _LANGUAGE_MAP, "description": _LANGUAGE_MAP},
                },
            },
        },
        "result": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "score": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "scaled": {"type": "number", "minimum": -1, "maximum": 1},
                        "raw": {"type": "number"},
                        "min": {"type": "number"},
                        "max": {"type": "number"},
                    },
                },
                "success": {"type": "boolean"},
                "completion": {"type": "boolean"},
                "response": {"type": "string"},
                "duration": {"type": "string"},
                "extensions": {"type": "object"},
            },
        },
        "context": {
            "type": "object",
            "properties": {
                "platform": {"type": "string"},
                "extensions": {"type": "object", "propertyNames": _IRI},
            },
        },
        "timestamp": {"type": "string", "format": "date-time"},
        "version": {"type": "string", "pattern": r"^1\.0\.\d+$"},
    },
}
