"""WhatsApp sessions: one supervised task per device over a pluggable driver."""
