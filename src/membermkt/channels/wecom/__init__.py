"""WeCom (企业微信) customer-contact adapter: callbacks, welcome fast path, API client,
channels and staff service data.

* Callbacks: :class:`WeComCallbackHandler` (URL verification, decryption with receive id =
  corpid through the shared :class:`~membermkt.channels.wechat.MessageCrypto`, typed events
  from :func:`parse_message`, core events, de-duplication) and :class:`WelcomeSender`.
* API: :class:`WeCom` / :class:`AsyncWeCom`.
* Attribution: :func:`encode_state` / :func:`decode_state`; identity graph:
  :func:`link_contact` / :func:`sync_contacts` (external_userid + unionid), and
  :class:`ContactEnricher` (new contacts linked by unionid in the background).
* Channels: ``wecom.mass`` (:class:`WeComMassChannel`), ``wecom.group`` (customer-group
  mass send, :class:`WeComGroupChannel`) and ``wecom.welcome``.
* Staff data: :func:`import_archive`.
"""

from membermkt.channels.wecom.channel import (
    AsyncWeComMassChannel,
    AsyncWeComWelcomeChannel,
    WeComMassChannel,
    WeComWelcomeChannel,
    apull_mass_results,
    ledger_marks,
    mass_rules,
    pull_mass_results,
)
from membermkt.channels.wecom.client import AsyncWeCom, WeCom
from membermkt.channels.wecom.enrich import ContactEnricher
from membermkt.channels.wecom.groupsend import (
    AsyncWeComGroupChannel,
    GroupSendPolicy,
    WeComGroupChannel,
    apull_group_results,
    group_ledger_marks,
    group_recipient_id,
    group_rules,
    plan_group_send,
    pull_group_results,
)
from membermkt.channels.wecom.handler import (
    WeComCallbackHandler,
    WeComEndpoint,
    WeComIncoming,
    events_for,
)
from membermkt.channels.wecom.identity import ContactSyncReport, link_contact, sync_contacts
from membermkt.channels.wecom.messages import (
    ExternalChatEvent,
    ExternalContactEvent,
    ExternalTagEvent,
    parse_message,
)
from membermkt.channels.wecom.staff import import_archive
from membermkt.channels.wecom.state import ChannelState, decode_state, encode_state
from membermkt.channels.wecom.welcome import (
    WelcomeConfig,
    WelcomeMessage,
    WelcomeOutcome,
    WelcomeSender,
    WelcomeStatus,
)

__all__ = [
    "AsyncWeCom",
    "AsyncWeComGroupChannel",
    "AsyncWeComMassChannel",
    "AsyncWeComWelcomeChannel",
    "ChannelState",
    "ContactEnricher",
    "ContactSyncReport",
    "ExternalChatEvent",
    "ExternalContactEvent",
    "ExternalTagEvent",
    "GroupSendPolicy",
    "WeCom",
    "WeComCallbackHandler",
    "WeComEndpoint",
    "WeComGroupChannel",
    "WeComIncoming",
    "WeComMassChannel",
    "WeComWelcomeChannel",
    "WelcomeConfig",
    "WelcomeMessage",
    "WelcomeOutcome",
    "WelcomeSender",
    "WelcomeStatus",
    "apull_group_results",
    "apull_mass_results",
    "decode_state",
    "encode_state",
    "events_for",
    "group_ledger_marks",
    "group_recipient_id",
    "group_rules",
    "import_archive",
    "ledger_marks",
    "link_contact",
    "mass_rules",
    "parse_message",
    "plan_group_send",
    "pull_group_results",
    "pull_mass_results",
    "sync_contacts",
]
