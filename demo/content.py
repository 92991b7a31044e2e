"""The demo mailbox: realistic sample mail in Spanish and English.

`initial_messages(now)` is what the mailbox holds when the demo starts (a week of
mail, oldest first); `DeliveryCycle` makes the mail that arrives while it runs,
one message per call, starting with the alarm an example automation reacts to.
Every message is built with the standard library's `email` package and comes out
as the bytes a real server would hold: CRLF line ends, RFC 2047 encoded-words for
non-ASCII headers, MIME multipart with base64 attachments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
import hashlib
from pathlib import Path
import struct
import textwrap
import zlib
from zoneinfo import ZoneInfo

DEMO_DOMAIN = "demo.example"
DEMO_RECIPIENT = Address("Demo", "demo", DEMO_DOMAIN)
ALARM_SENDER = Address("Central de alarmas", "alarm", DEMO_DOMAIN)
ALARM_SUBJECT = "Alarma: movimiento detectado"
MADRID = ZoneInfo("Europe/Madrid")

_ROOT = Path(__file__).resolve().parent.parent
_ICON = _ROOT / "custom_components" / "pop3_mail" / "brand" / "icon.png"


def _pdf(title: str) -> bytes:
    """A small, valid one-page PDF showing `title` (enough for any viewer to open)."""
    text = title.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _photo(width: int, height: int, seed: str) -> bytes:
    """A PNG "photo" of a beach (sky, sea, sand) with sensor noise, as heavy as a real one.

    The noise comes from SHAKE-256 of `seed`, so the same seed gives the same image.
    """
    noise = hashlib.shake_256(seed.encode()).digest(width * height * 3)
    rows = bytearray()
    for y in range(height):
        if y < height * 0.45:
            colour = (90 + y // 4, 150 + y // 6, 224)
        elif y < height * 0.65:
            colour = (20, 110 + y // 8, 160)
        else:
            colour = (210, 185, 130)
        base = bytes(colour) * width
        start = y * width * 3
        rows.append(0)  # PNG filter type: none
        # Base channels stay below 225, so adding 5 bits of noise never overflows a byte.
        rows += bytes(
            b + (n & 0x1F) for b, n in zip(base, noise[start : start + width * 3], strict=True)
        )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


def _ics(summary: str, start: datetime) -> bytes:
    """A one-event iCalendar invitation."""
    stamp = start.strftime("%Y%m%dT%H%M%S")
    end = (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%S")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//pop3_mail demo//EN",
        "METHOD:REQUEST",
        "BEGIN:VEVENT",
        f"UID:{stamp}@work.example",
        f"DTSTART:{stamp}",
        f"DTEND:{end}",
        f"SUMMARY:{summary}",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines).encode()


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a sample message."""

    filename: str
    content_type: str
    data: bytes


def build_message(
    *,
    sender: Address,
    subject: str,
    date: datetime,
    text: str | None = None,
    html: str | None = None,
    attachments: tuple[Attachment, ...] = (),
    to: tuple[Address, ...] = (DEMO_RECIPIENT,),
    cc: tuple[Address, ...] = (),
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """Bytes of one message as a server stores it (CRLF, MIME, encoded-words)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = make_msgid(domain=sender.domain)
    for name, value in extra_headers:
        message[name] = value
    if text is not None:
        message.set_content(textwrap.dedent(text).strip() + "\n")
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    for attachment in attachments:
        maintype, subtype = attachment.content_type.split("/", 1)
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message.as_bytes(policy=SMTP)


def initial_messages(now: datetime) -> list[bytes]:
    """The mailbox when the demo starts: eight messages of the last week, oldest first."""
    return [
        build_message(
            sender=Address("Equipo POP3 Mail", "hola", DEMO_DOMAIN),
            subject="Bienvenido a tu buzón de demostración",
            date=now - timedelta(days=6, hours=3),
            text="""
                ¡Hola!

                Este buzón es el de la demostración de POP3 Mail. Cada 30 segundos llega un
                correo nuevo: mira cómo cambian los sensores y cómo la automatización de
                ejemplo avisa cuando escribe la central de alarmas.

                Un saludo,
                El equipo de POP3 Mail
            """,
        ),
        build_message(
            sender=Address("Power & Light billing", "billing", "power.example"),
            subject="Your invoice INV-2026-0117 is ready",
            date=now - timedelta(days=5, hours=7),
            text="""
                Hello,

                Your electricity invoice for October is attached (EUR 48.20).
                It will be charged to your account ending in 4321 on the 5th.

                Power & Light
            """,
            attachments=(
                Attachment("INV-2026-0117.pdf", "application/pdf", _pdf("Invoice INV-2026-0117")),
            ),
        ),
        build_message(
            sender=Address("Lucía Fernández", "lucia", "familia.example"),
            subject="Fotos del fin de semana 📷",
            date=now - timedelta(days=4, hours=1),
            text="""
                ¡Qué bien lo pasamos! Te mando una foto de la playa y la del sobre que me pediste 😄
                Besos,
                Lucía
            """,
            html=(
                "<p>¡Qué bien lo pasamos! Te mando una foto de la playa"
                " y la del sobre que me pediste 😄</p>"
                "<p>Besos,<br>Lucía</p>"
            ),
            attachments=(
                Attachment("playa-1.png", "image/png", _photo(640, 400, "playa-1")),
                Attachment("sobre.png", "image/png", _ICON.read_bytes()),
            ),
        ),
        build_message(
            sender=ALARM_SENDER,
            subject=ALARM_SUBJECT,
            date=now - timedelta(days=3, hours=9),
            text="""
                Sensor: Entrada
                Estado: movimiento detectado con el sistema armado.
            """,
        ),
        build_message(
            sender=Address("Sam Carter", "sam", "work.example"),
            subject="Meeting moved to Thursday",
            date=now - timedelta(days=2, hours=5),
            cc=(Address("Priya Shah", "priya", "work.example"),),
            text="""
                Hi,

                The planning meeting moves to Thursday at 10:00. Updated invitation attached.

                Sam
            """,
            attachments=(
                Attachment(
                    "invite.ics",
                    "text/calendar",
                    _ics("Planning meeting", now + timedelta(days=2)),
                ),
            ),
        ),
        build_message(
            sender=Address("Tienda Ñandú", "pedidos", "tienda.example"),
            subject="Tu pedido #50213 ha sido enviado",
            date=now - timedelta(days=1, hours=8),
            html=(
                "<html><body><h1>¡Tu pedido va de camino!</h1>"
                "<p>Pedido <b>#50213</b>: 2 bombillas inteligentes, 1 sensor de puerta.</p>"
                "<p>Entrega prevista: mañana entre las 9:00 y las 14:00.</p></body></html>"
            ),
        ),
        build_message(
            sender=Address("Smart Home Weekly", "newsletter", "smarthome.example"),
            subject="Weekly newsletter: five automation ideas",
            date=now - timedelta(hours=20),
            extra_headers=(("List-Unsubscribe", "<mailto:leave@smarthome.example>"),),
            text="""
                This week's five automation ideas
                ..................................
                1. Turn the porch light on when a parcel is delivered.
                2. Announce the washing machine is done.
                3. Close the blinds at sunset.
                4. Warn when a window is open and the heating is on.
                5. Send yourself a note when the alarm company writes.
                .
                (Lines starting with a dot above test POP3 dot-stuffing.)
            """,
        ),
        build_message(
            sender=Address("Servicio Técnico", "avisos", "caldera.example"),
            subject="Recordatorio: revisión anual de la caldera",
            date=now - timedelta(hours=2),
            text="""
                Le recordamos que la revisión anual de su caldera está prevista para
                el próximo martes entre las 8:00 y las 15:00.
            """,
        ),
    ]


class DeliveryCycle:
    """Makes the mail that arrives while the demo runs, one message per call.

    The first message is the alarm (so the example automation fires within the first
    interval), then a rotation of ordinary mail with the alarm every fourth message.
    """

    def __init__(self) -> None:
        """Start at the alarm."""
        self.delivered = 0

    def next_message(self, now: datetime) -> bytes:
        """The next message, dated `now`."""
        n = self.delivered
        self.delivered += 1
        if n % 4 == 0:
            # The alarm company writes its local time, like the demo's Home Assistant.
            local = now.astimezone(MADRID)
            return build_message(
                sender=ALARM_SENDER,
                subject=ALARM_SUBJECT,
                date=now,
                text=f"""
                    Sensor: {("Salón", "Entrada", "Garaje", "Jardín")[n // 4 % 4]}
                    Hora: {local:%H:%M:%S}
                    Estado: movimiento detectado con el sistema armado.
                """,
            )
        kind = (n - n // 4 - 1) % 3
        if kind == 0:
            return build_message(
                sender=Address("Parcel Express", "tracking", "parcel.example"),
                subject=f"Your parcel PX{400100 + n} was delivered",
                date=now,
                text=f"""
                    Your parcel PX{400100 + n} was left at the front door at {now:%H:%M}.
                """,
                attachments=(
                    Attachment("front-door.png", "image/png", _photo(320, 240, f"door-{n}")),
                ),
            )
        if kind == 1:
            return build_message(
                sender=Address("Aguas del Valle", "facturas", "aguas.example"),
                subject=f"Factura de agua n.º {2600 + n}",
                date=now,
                text="""
                    Adjuntamos su factura del bimestre. Importe: 23,75 €.
                """,
                attachments=(
                    Attachment(
                        f"factura-{2600 + n}.pdf", "application/pdf", _pdf(f"Factura {2600 + n}")
                    ),
                ),
            )
        return build_message(
            sender=Address("Backup robot", "backup", "nas.example"),
            subject=f"Nightly backup #{n} finished",
            date=now,
            text=f"""
                Backup #{n} finished at {now:%H:%M:%S}: 1,204 files, 0 errors.
            """,
        )
