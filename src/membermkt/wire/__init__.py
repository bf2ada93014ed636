"""The sans-I/O protocol layer shared by every platform client (official account, WeCom):
HTTP request/response values and flow steps (:mod:`~membermkt.wire.http`), the errcode
decision table (:mod:`~membermkt.wire.errcodes`), the retry policy
(:mod:`~membermkt.wire.retry`) and client-side call budgets (:mod:`~membermkt.wire.budget`).
Nothing here performs I/O, sleeps or reads the clock."""

from membermkt.wire.budget import BudgetWindowExceeded, CallBudget, CallBudgets
from membermkt.wire.errcodes import OA_ERRCODES, Action, Rule, Scope, decide, error_for
from membermkt.wire.http import GetToken, HttpRequest, HttpResponse, RefreshToken, Send
from membermkt.wire.retry import RetryPolicy

__all__ = [
    "OA_ERRCODES",
    "Action",
    "BudgetWindowExceeded",
    "CallBudget",
    "CallBudgets",
    "GetToken",
    "HttpRequest",
    "HttpResponse",
    "RefreshToken",
    "RetryPolicy",
    "Rule",
    "Scope",
    "Send",
    "decide",
    "error_for",
]
