"""What the browser shows for an offer: texts in the visitor's language and the channel's link.

Where it sits: Decision → **offer rendering** → tracker widget. The service answers a decision
with a small ``render`` dict (kind, title, text, button labels, link or phone number) that
``tracker.js`` turns into an accessible widget; the site configures its links and may replace
any text. Languages are those of :data:`nextchannel.schema.LANGUAGES`; a language without texts
falls back to English.
"""

from __future__ import annotations

from typing import Any, Mapping

from nextchannel.errors import ConfigError

__all__ = ["OfferRenderer", "DEFAULT_TEXTS", "DEFAULT_LINKS"]

# (title, text, accept label) per channel; "dismiss" is the close button's label.
DEFAULT_TEXTS: dict[str, dict[str, Any]] = {
    "en": {"dismiss": "No thanks",
           "chat": ("Need a hand?", "An agent can help you in a chat right now.", "Start chat"),
           "callback": ("Shall we call you?", "Leave your number and we call you back.", "Request a callback"),
           "phone": ("Questions?", "Call us, we are happy to help.", "Call"),
           "email": ("Write to us", "Send us a message and we answer by e-mail.", "Write an e-mail"),
           "messaging": ("Message us", "Reach us on your messaging app.", "Open messaging"),
           "self_service": ("Stuck?", "This help article answers the most common questions.", "Read the article")},
    "de": {"dismiss": "Nein, danke",
           "chat": ("Können wir helfen?", "Ein Berater hilft Ihnen jetzt im Chat.", "Chat starten"),
           "callback": ("Sollen wir Sie anrufen?", "Hinterlassen Sie Ihre Nummer, wir rufen zurück.", "Rückruf anfordern"),
           "phone": ("Fragen?", "Rufen Sie uns an, wir helfen gern.", "Anrufen"),
           "email": ("Schreiben Sie uns", "Senden Sie uns eine Nachricht, wir antworten per E-Mail.", "E-Mail schreiben"),
           "messaging": ("Schreiben Sie uns", "Erreichen Sie uns per Messenger.", "Messenger öffnen"),
           "self_service": ("Nicht weiter?", "Dieser Hilfeartikel beantwortet die häufigsten Fragen.", "Artikel lesen")},
    "fr": {"dismiss": "Non merci",
           "chat": ("Besoin d'aide ?", "Un conseiller peut vous aider par chat maintenant.", "Démarrer le chat"),
           "callback": ("On vous rappelle ?", "Laissez votre numéro, nous vous rappelons.", "Être rappelé"),
           "phone": ("Des questions ?", "Appelez-nous, nous sommes là pour vous aider.", "Appeler"),
           "email": ("Écrivez-nous", "Envoyez-nous un message, nous répondons par e-mail.", "Écrire un e-mail"),
           "messaging": ("Écrivez-nous", "Contactez-nous sur votre messagerie.", "Ouvrir la messagerie"),
           "self_service": ("Bloqué ?", "Cet article d'aide répond aux questions fréquentes.", "Lire l'article")},
    "es": {"dismiss": "No, gracias",
           "chat": ("¿Te ayudamos?", "Un agente puede ayudarte por chat ahora mismo.", "Iniciar chat"),
           "callback": ("¿Te llamamos?", "Déjanos tu número y te llamamos.", "Solicitar llamada"),
           "phone": ("¿Preguntas?", "Llámanos, estaremos encantados de ayudarte.", "Llamar"),
           "email": ("Escríbenos", "Envíanos un mensaje y te respondemos por correo.", "Escribir correo"),
           "messaging": ("Escríbenos", "Contáctanos por mensajería.", "Abrir mensajería"),
           "self_service": ("¿Atascado?", "Este artículo de ayuda responde a las preguntas frecuentes.", "Leer el artículo")},
}

#: Default targets of the accept button (a site replaces them with its own).
DEFAULT_LINKS: dict[str, str] = {
    "chat": "#chat", "callback": "/contact/callback", "phone": "tel:+10000000000", "email": "/contact/email",
    "messaging": "https://wa.me/10000000000", "self_service": "/help",
}


class OfferRenderer:
    """Turns an offered channel into the ``render`` dict the tracker shows.

    Parameters
    ----------
    links : dict, optional
        Accept-button target per channel (URL, ``tel:`` number, or ``#chat`` — a fragment makes
        the tracker dispatch a ``nextchannel:accept`` DOM event for the site's own chat widget);
        merged over :data:`DEFAULT_LINKS`.
    texts : dict, optional
        ``{language: {channel: (title, text, accept_label), "dismiss": label}}`` merged over
        :data:`DEFAULT_TEXTS`.
    default_language : str, default "en"

    Examples
    --------
    >>> r = OfferRenderer(links={"phone": "tel:+4930123456"})
    >>> out = r.render("phone", "de")
    >>> out["title"], out["href"], out["lang"]
    ('Fragen?', 'tel:+4930123456', 'de')
    >>> r.render("chat", "sv")["accept"]       # no Swedish texts: English
    'Start chat'
    """

    def __init__(self, links: Mapping[str, str] | None = None, texts: Mapping[str, Mapping[str, Any]] | None = None,
                 default_language: str = "en") -> None:
        self.links = {**DEFAULT_LINKS, **dict(links or {})}
        merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEFAULT_TEXTS.items()}
        for lang, table in (texts or {}).items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"texts[{lang!r}] must be a dict of channel -> (title, text, accept), got {table!r}")
            merged.setdefault(lang, {}).update(table)
        if default_language not in merged:
            raise ConfigError(f"default_language must be one of {sorted(merged)}, got {default_language!r}")
        self.texts = merged
        self.default_language = default_language

    def render(self, channel: str, language: str | None) -> dict[str, Any]:
        """The widget's content for ``channel`` in ``language`` (falls back to the default language)."""
        lang = language if language in self.texts and channel in self.texts[language] else self.default_language
        table = self.texts[lang]
        fallback = self.texts[self.default_language]
        title, text, accept = table.get(channel) or fallback.get(channel) or (channel, "", "OK")
        return {"kind": channel, "title": title, "text": text, "accept": accept,
                "dismiss": table.get("dismiss", fallback.get("dismiss", "Close")),
                "href": self.links.get(channel, "#" + channel), "lang": lang}
