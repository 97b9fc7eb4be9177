"""Spoken announcements: what the burners did, said aloud by a Xiaoai speaker.

``texts`` turns an event into a sentence (pure), ``announcer`` queues sentences
and hands them to a speaker one at a time without ever holding up the
controller, and ``xiaoai`` is the speaker on the LAN. Only ``xiaoai`` imports
python-miio, so the rest costs nothing to import.
"""
