"""The parts of the ``alerts`` plugin (:mod:`listeners.plugins.alerts` wires them).

* :mod:`~listeners.alerting.model` — triggers, the :class:`Alert` record, the JSON schema;
* :mod:`~listeners.alerting.config` — ``[alert:NAME]`` sections → :class:`AlertConfig`;
* :mod:`~listeners.alerting.policy` — dedup, reminders, recovery (pure, clock passed in);
* :mod:`~listeners.alerting.spool` — durable one-file-per-alert spool;
* :mod:`~listeners.alerting.context` — exit status, uptime and log tails over XML-RPC;
* :mod:`~listeners.alerting.formats` — json, Slack, Alertmanager, mail, command payloads;
* :mod:`~listeners.alerting.transports` — HTTP, SMTP and command senders;
* :mod:`~listeners.alerting.courier` — per-channel delivery thread (rate limit, batching,
  tenacity retries);
* :mod:`~listeners.alerting.redact` — secrets out of logs.
"""

from listeners.alerting.config import AlertConfig as AlertConfig
from listeners.alerting.config import ChannelType as ChannelType
from listeners.alerting.config import Format as Format
from listeners.alerting.config import ProgramFilter as ProgramFilter
from listeners.alerting.config import RateLimit as RateLimit
from listeners.alerting.config import load_alerts as load_alerts
from listeners.alerting.courier import Courier as Courier
from listeners.alerting.courier import TokenBucket as TokenBucket
from listeners.alerting.model import ALERT_SCHEMA as ALERT_SCHEMA
from listeners.alerting.model import ENVELOPE_SCHEMA as ENVELOPE_SCHEMA
from listeners.alerting.model import Alert as Alert
from listeners.alerting.model import Status as Status
from listeners.alerting.model import Trigger as Trigger
from listeners.alerting.policy import ChannelPolicy as ChannelPolicy
from listeners.alerting.policy import Decision as Decision
from listeners.alerting.policy import PolicySpec as PolicySpec
from listeners.alerting.policy import Verb as Verb
from listeners.alerting.redact import Redactor as Redactor
from listeners.alerting.redact import mask_url as mask_url
from listeners.alerting.spool import Spool as Spool
from listeners.alerting.transports import DeliveryError as DeliveryError
from listeners.alerting.transports import Sender as Sender
