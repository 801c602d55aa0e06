"""A SIP call over UDP to the test PBX, placed the way a carrier places it
(pbx/pjsip.conf: the endpoint e2e-trunk, found by source IP 127.0.0.1)."""

import secrets
import socket
import time


class SipCall:
    """One call from the test's SIP trunk to Asterisk over UDP, the way a
    carrier places it: INVITE with a PCMU offer, ACK the 200 OK, answer the
    BYE Asterisk sends when the dialplan hangs up, or send one at the end.
    ruri_user goes on the wire as given (percent escapes included)."""

    def __init__(self, port, ruri_user, from_user, headers=(), timeout=60):
        self.dest = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(1)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # Asterisk's audio lands here
        self.rtp.bind(("127.0.0.1", 0))
        self.me = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.ruri = f"sip:{ruri_user}@127.0.0.1:{port}"
        self.from_hdr = f"<sip:{from_user}@127.0.0.1>;tag={secrets.token_hex(4)}"
        self.to_hdr = f"<{self.ruri}>"
        self.contact = f"<sip:{from_user}@{self.me}>"
        self.call_id = "qmt" + secrets.token_hex(8)
        self.headers, self.timeout = list(headers), timeout
        self.remote = self.ruri            # Asterisk's Contact, once answered
        self.up = self.ended = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, first_line, cseq, extra=(), body="", branch=None):
        branch = branch or "z9hG4bK" + secrets.token_hex(8)
        lines = [first_line, f"Via: SIP/2.0/UDP {self.me};branch={branch};rport",
                 "Max-Forwards: 70", f"From: {self.from_hdr}", f"To: {self.to_hdr}",
                 f"Call-ID: {self.call_id}", f"CSeq: {cseq}", f"Contact: {self.contact}", *extra,
                 f"Content-Length: {len(body)}"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.dest)

    def _receive(self, deadline):
        """The next SIP message as (first line, {lower-case header: value}); None at the deadline."""
        while time.monotonic() < deadline:
            try:
                data, _addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs.setdefault(k.strip().lower(), v.strip())
            return head[0], hdrs
        return None

    def _sdp(self):
        port = self.rtp.getsockname()[1]
        return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

    def _ack(self, branch=None):
        self._send(f"ACK {self.remote} SIP/2.0", "1 ACK", branch=branch)

    def invite(self):
        """Send the INVITE; return the final status code (200 once answered)."""
        branch = "z9hG4bK" + secrets.token_hex(8)
        self._send(f"INVITE {self.ruri} SIP/2.0", "1 INVITE",
                   self.headers + ["Content-Type: application/sdp"], self._sdp(), branch)
        deadline = time.monotonic() + self.timeout
        while (msg := self._receive(deadline)) is not None:
            first, hdrs = msg
            code = int(first.split()[1]) if first.startswith("SIP/2.0 ") else 0
            if code >= 200 and hdrs.get("cseq", "").endswith("INVITE"):
                self.to_hdr = hdrs.get("to", self.to_hdr)
                self.remote = hdrs.get("contact", self.remote).strip("<>").split(">")[0]
                self.up = code < 300
                self._ack(None if self.up else branch)     # a refusal's ACK reuses the INVITE's branch
                return code
        raise AssertionError(f"no final answer to the INVITE in {self.timeout} s")

    def wait_bye(self, timeout=None):
        """Answer Asterisk's BYE with 200 OK; True when it came in time."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self.up and (msg := self._receive(deadline)) is not None:
            first, hdrs = msg
            if first.startswith("SIP/2.0 200") and hdrs.get("cseq", "").endswith("INVITE"):
                self._ack()                 # our ACK got lost: Asterisk repeats its 200
            elif first.startswith("BYE "):
                self._reply_ok(hdrs)
                self.up, self.ended = False, True
        return self.ended

    def _reply_ok(self, hdrs):
        lines = ["SIP/2.0 200 OK"] + [f"{name}: {hdrs[name.lower()]}" for name in
                                      ("Via", "From", "To", "Call-ID", "CSeq")] + ["Content-Length: 0"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), self.dest)

    def close(self):
        """Hang up if the call is still up, then free the sockets."""
        try:
            if self.up:
                self._send(f"BYE {self.remote} SIP/2.0", "2 BYE")
                self.up = False
        finally:
            self.sock.close()
            self.rtp.close()
