"""WeCom customer-contact API: one module per family, each a set of pure request builders
returning :class:`~membermkt.channels.wechat.api._call.ApiCall` values (reference §3)."""
