"""The network's rules, enforced where the connection is made: which addresses may be
trusted with the key, how long a request may take in all, and how much of an answer is read.

Same origin is decided by urllib3's own parsing of the URL exactly as requests prepared it:
the parser that opens the connection is the one that judges it. An address that two parsers
could read differently (a backslash, user info, control characters, whitespace) is refused
before anything is sent.

requests' timeout bounds each wait for the next byte only; an answer trickling one byte a
second never trips it. `Deadline` bounds the whole request: the session's connections report
their sockets to the deadline of the thread using them, and when it passes the sockets are
shut down, so whatever read is blocked ends at once.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

# Control characters, whitespace and backslashes: urllib.parse, urllib3 and servers do not
# agree on them (a backslash ends the authority for one and not for another).
AMBIGUOUS_CHARACTERS = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
DEFAULT_PORTS = {"http": 80, "https": 443}
BODY_BLOCK = 64 * 1024


class UnsafeURL(ValueError):
    """An address that could be read as two different places; `str()` says why (without
    repeating the address, which may carry a password)."""


def prepared(url: str) -> str:
    """The URL as requests sends it (IDNA host, quoted path)."""
    request = requests.PreparedRequest()
    try:
        request.prepare_url(url, None)
    except (requests.exceptions.RequestException, ValueError, UnicodeError):
        raise UnsafeURL("it is not a valid address") from None
    return request.url


def check_characters(text: str) -> None:
    """UnsafeURL for characters that parsers drop, keep or split on differently (urllib's
    urljoin silently deletes tabs and line breaks, for one)."""
    if AMBIGUOUS_CHARACTERS.search(text):
        raise UnsafeURL("it holds spaces, control characters or backslashes")


def follow(url: str, location: str) -> str:
    """Where a redirect from `url` to `location` leads, judged on the raw `location`."""
    check_characters(location)
    return check_unambiguous(urljoin(url, location))


def check_unambiguous(url: str) -> str:
    """`url` as requests prepares it, or UnsafeURL when parsers could disagree on it."""
    check_characters(url)
    ready = prepared(url)
    try:
        connect = parse_url(ready)
        split = urlsplit(ready)
        split_host = split.hostname
    except (LocationParseError, ValueError):
        raise UnsafeURL("it is not a valid address") from None
    authority = split.netloc
    if connect.auth is not None or "@" in authority or split.username is not None:
        raise UnsafeURL("it holds a user name or password")
    if (connect.host or "").lower().strip("[]") != (split_host or "").lower():
        raise UnsafeURL("it can be read as two different hosts")
    return ready


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port of an address, as urllib3 reads it to connect."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        try:
            parts = parse_url(prepared(url))
        except (UnsafeURL, LocationParseError, ValueError):
            return cls("", "", -1)
        scheme = (parts.scheme or "").lower()
        port = parts.port if parts.port is not None else DEFAULT_PORTS.get(scheme, -1)
        return cls(scheme, (parts.host or "").lower(), port)

    @property
    def is_loopback(self) -> bool:
        host = self.host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def is_safe(self) -> bool:
        """https anywhere; plain http only to this computer."""
        return bool(self.host) and (self.scheme == "https"
                                    or (self.scheme == "http" and self.is_loopback))


# -- the total deadline ----------------------------------------------------------------------
_current = threading.local()


class Deadline:
    """`with Deadline(seconds) as deadline:` every connection this thread uses meanwhile is
    shut down once `seconds` have passed; `deadline.expired` then says why a read failed or
    an answer ended early."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        _current.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        _current.deadline = None
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.expired:
                _shut(sock)
            elif sock not in self._sockets:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket: its override would tear down the
    # TLS state under the thread that is reading it.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _watch(sock) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _Watched:
    """Reports the connection's socket to the current thread's deadline whenever it is
    connected or used for a request."""

    def connect(self):
        super().connect()
        _watch(self.sock)

    def request(self, *args, **kwargs):
        _watch(self.sock)
        return super().request(*args, **kwargs)

    def getresponse(self, *args, **kwargs):
        _watch(self.sock)
        return super().getresponse(*args, **kwargs)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections that obey Deadline (proxies included)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager


def session(user_agent: str) -> requests.Session:
    new = requests.Session()
    new.headers["User-Agent"] = user_agent
    adapter = DeadlineAdapter(max_retries=0)
    new.mount("http://", adapter)
    new.mount("https://", adapter)
    return new


# -- bounded answers -------------------------------------------------------------------------
class TooLarge(Exception):
    """The answer is larger than its limit (declared or as decoded)."""


class CutOff(Exception):
    """The answer broke off, could not be decompressed, or a read timed out (`timed_out`)."""

    def __init__(self, timed_out: bool = False):
        super().__init__()
        self.timed_out = timed_out


def read_bounded(response: requests.Response, limit: int) -> bytearray:
    """The whole body of a streamed response, decompressed as urllib3 does it, refused as
    TooLarge as soon as the *decoded* bytes pass `limit` (or the declared length does), so a
    compression bomb or an endless answer costs at most `limit` bytes of memory."""
    body = bytearray()
    for block in bounded_blocks(response, limit):
        body += block
    return body


def bounded_blocks(response: requests.Response, limit: int, promptly: bool = False):
    """The decoded blocks of a streamed response, under read_bounded's rules: TooLarge once
    more than `limit` decoded bytes came, CutOff when the answer breaks off. `promptly`
    hands on whatever has arrived instead of waiting for whole blocks: a server-sent event
    must not wait for the bytes of the next one."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge()
    received = 0
    if promptly and hasattr(response.raw, "read1"):
        blocks = _arriving(response.raw)
    else:
        blocks = response.raw.stream(BODY_BLOCK, decode_content=True)
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            return
        except (Urllib3Error, OSError, requests.exceptions.RequestException) as error:
            raise CutOff(timed_out=_is_timeout(error)) from None
        received += len(block)
        if received > limit:
            raise TooLarge()
        yield block


def _arriving(raw):
    """urllib3's blocks as they arrive (read1: one read of the socket, at most BODY_BLOCK)."""
    while True:
        block = raw.read1(BODY_BLOCK, decode_content=True)
        if not block:
            return
        yield block


def _is_timeout(error: BaseException) -> bool:
    from urllib3.exceptions import ReadTimeoutError

    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, (ReadTimeoutError, socket.timeout, TimeoutError)):
            return True
        error = getattr(error, "reason", None) or error.__context__
        seen += 1
    return False

