"""qmt doctor's reading of each queue's ring timeout from queues.conf, as
app_queue reads it (includes, templates, [name](+)), and its verdict."""

import configparser

from qmt.cli import queues_ring_long_enough
from qmt.config import Settings
from qmt.queues_conf import queue_timeouts

QUEUES_CONF = """\
[general]
persistentmembers = yes
timeout = 99            ; [general] is no queue, and no default for them

#include queues_additional.conf
#tryinclude queues_missing.conf
"""
# As FreePBX writes it, plus a template and an appended section.
ADDITIONAL = """\
[mobiles](!)
timeout = 40
strategy = ringall

[8008]
timeout=15
strategy=ringall

[8010](mobiles)
ringinuse = no

[8011]
strategy = linear

[8012](mobiles)
timeout => 0

[8008](+)
timeout = 36
"""


def write(tmp_path):
    (tmp_path / "queues.conf").write_text(QUEUES_CONF)
    (tmp_path / "queues_additional.conf").write_text(ADDITIONAL)
    return str(tmp_path / "queues.conf")


def settings(**member):
    parser = configparser.ConfigParser(interpolation=None)
    parser["member"] = member
    return Settings(parser)


def test_timeouts_follow_includes_templates_and_appended_sections(tmp_path):
    assert queue_timeouts(write(tmp_path)) == {"8008": 36, "8010": 40, "8011": 15, "8012": 0}


def test_an_unreadable_queues_conf_is_not_a_guess(tmp_path):
    assert queue_timeouts(str(tmp_path / "nope.conf")) is None
    ok, detail = queues_ring_long_enough(settings(), ["8008"], str(tmp_path / "nope.conf"))
    assert ok is None and "not checked" in detail


def test_doctor_names_each_queue_that_rings_shorter_than_the_ring_path_needs(tmp_path):
    path = write(tmp_path)
    # defaults: ring_seconds 20 + answer_wait 5 + 10 for the prompts = 35 s
    assert queues_ring_long_enough(settings(), ["8008", "8010", "8012"], path)[0] is True
    ok, detail = queues_ring_long_enough(settings(), ["8008", "8011", "9999"], path)
    assert ok is False and "8011 (15 s), 9999 (15 s)" in detail and "8008" not in detail
    ok, detail = queues_ring_long_enough(settings(ring_seconds="25"), ["8008", "8010"], path)
    assert ok is False and "ring path's 40 s" in detail and "8008 (36 s)" in detail and "8010" not in detail


def test_a_fifo_where_queues_conf_belongs_is_unreadable_at_once(tmp_path):
    """A FIFO the asterisk user planted must not stall qmt doctor (and so
    install.sh --check): it reads as a file that cannot be read."""
    import os
    fifo = tmp_path / "queues.conf"
    os.mkfifo(fifo)
    assert queue_timeouts(str(fifo)) is None
    (tmp_path / "main.conf").write_text("#include queues.conf\n[8008]\ntimeout = 40\n")
    assert queue_timeouts(str(tmp_path / "main.conf")) == {"8008": 40}


def test_persistent_members_is_read_as_app_queue_reads_it(tmp_path):
    from qmt.queues_conf import persistent_members
    conf = tmp_path / "queues.conf"
    assert persistent_members(str(conf)) is None                      # unreadable: not known
    conf.write_text("[general]\npersistentmembers = yes\n")
    assert persistent_members(str(conf)) is True
    conf.write_text("[general]\nautofill = yes\n\n[8008]\npersistentmembers = yes\n")
    assert persistent_members(str(conf)) is False                     # app_queue's default: off
