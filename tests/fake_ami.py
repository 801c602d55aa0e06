"""A fake Asterisk manager interface (AMI) over a real TCP socket on
127.0.0.1, answering from a FakeAsterisk's queues as app_queue does: the
banner, Login (Success or Error), QueueStatus with its Queue and Member
filters (QueueParams, QueueMember with Paused and PausedReason, then
QueueStatusComplete ending the list), Logoff. The AGI asks it for the
reason of a member's pause, which no dialplan function tells.

For `qmt serve`'s shared connection it counts the connections it took,
may hold an action's answer (`hold`: the answer then comes from a thread
of its own, so answers can overtake each other, or never come) and drops
every open connection on request (drop_connections()).
"""

import socket
import threading

BANNER = b"Asterisk Call Manager/9.0.0\r\n"


def message(*pairs):
    return "".join("%s: %s\r\n" % pair for pair in pairs) + "\r\n"


class FakeAmi:
    """Serves one FakeAsterisk (`asterisk`, swappable between calls) until closed."""

    def __init__(self, asterisk=None, username="qmt", secret="s3cret"):
        self.asterisk, self.username, self.secret = asterisk, username, secret
        self.actions = []                      # (action name, fields) in the order received
        self.refuse_login = False
        self.connections = 0                   # connections taken
        # fields -> bool, run in a thread of its own before an action's answer
        # (never Login's or Logoff's): False = the answer never comes.
        self.hold = None
        self._open = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def config(self):
        """The [ami] section that points the toggle here."""
        return "\n[ami]\nhost = 127.0.0.1\nport = %d\nusername = %s\nsecret = %s\n" % (
            self.port, self.username, self.secret)

    def close(self):
        self._server.close()

    def logins(self):
        return sum(1 for action, _fields in self.actions if action.lower() == "login")

    def drop_connections(self):
        """Every open connection closed, as by a manager restart."""
        for connection in list(self._open):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self):
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    def _session(self, connection):
        self.connections += 1
        self._open.append(connection)
        sending = threading.Lock()

        def send(reply):
            with sending:
                try:
                    connection.sendall(reply.encode("utf-8"))
                except OSError:
                    pass                       # the client is gone

        def answer_when_released(fields, reply):
            if self.hold(fields):
                send(reply)

        with connection, connection.makefile("rb") as reader:
            send(BANNER.decode())
            while True:
                fields = self._read_message(reader)
                if fields is None:
                    break
                self.actions.append((fields.get("Action", ""), fields))
                reply, action = self._reply(fields), fields.get("Action", "").lower()
                if self.hold is not None and action not in ("login", "logoff"):
                    threading.Thread(target=answer_when_released, args=(fields, reply), daemon=True).start()
                    continue
                send(reply)
                if action == "logoff":
                    break
        self._open.remove(connection)

    @staticmethod
    def _read_message(reader):
        fields = {}
        while True:
            try:
                line = reader.readline()
            except OSError:
                return None                    # reset: the client closed with our answer unread
            if not line:
                return None
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if fields:
                    return fields
                continue
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()

    def _reply(self, fields):
        action, action_id = fields.get("Action", "").lower(), fields.get("ActionID", "")
        if action == "login":
            ok = not self.refuse_login and (fields.get("Username"), fields.get("Secret")) == (self.username,
                                                                                           self.secret)
            return message(("Response", "Success" if ok else "Error"), ("ActionID", action_id),
                           ("Message", "Authentication accepted" if ok else "Authentication failed"))
        if action == "queuestatus":
            return self._queue_status(fields, action_id)
        if action == "logoff":
            return message(("Response", "Goodbye"), ("ActionID", action_id))
        if action in ("queueremove", "queuepause"):
            return self._change_member(action, fields, action_id)
        return message(("Response", "Error"), ("ActionID", action_id), ("Message", "Invalid/unknown command"))

    def _change_member(self, action, fields, action_id):
        """QueueRemove, and QueuePause with Paused false (all `qmt` sends), on the fake queues."""
        queue, interface = fields.get("Queue", ""), fields.get("Interface", "")
        members = self.asterisk.queues.get(queue)
        if members is None or interface not in members:
            return message(("Response", "Error"), ("ActionID", action_id), ("Message", "Not there"))
        if action == "queueremove":
            members.remove(interface)
        else:
            self.asterisk.paused.discard((queue, interface))
        return message(("Response", "Success"), ("ActionID", action_id), ("Message", "done"))

    def _queue_status(self, fields, action_id):
        """app_queue's manager_queues_status: the queue filter in any case,
        the member filter exact (interface or member name)."""
        wanted_queue, wanted_member = fields.get("Queue", ""), fields.get("Member", "")
        out = [message(("Response", "Success"), ("ActionID", action_id), ("EventList", "start"),
                       ("Message", "Queue status will follow"))]
        items = 0
        for queue, members in self.asterisk.queues.items():
            if wanted_queue and queue.lower() != wanted_queue.lower():
                continue
            out.append(message(("Event", "QueueParams"), ("Queue", queue), ("ActionID", action_id)))
            items += 1
            for interface in members:
                if wanted_member and interface != wanted_member:
                    continue
                paused = (queue, interface) in self.asterisk.paused
                out.append(message(("Event", "QueueMember"), ("Queue", queue), ("Name", interface),
                                   ("Location", interface), ("Membership", "dynamic"), ("Paused", int(paused)),
                                   ("PausedReason", self.asterisk.pause_reasons.get((queue, interface), "")
                                    if paused else ""),
                                   ("LastPause", self.asterisk.last_pauses.get((queue, interface), 0)),
                                   ("ActionID", action_id)))
                items += 1
        out.append(message(("Event", "QueueStatusComplete"), ("ActionID", action_id), ("EventList", "Complete"),
                           ("ListItems", items)))
        return "".join(out)
