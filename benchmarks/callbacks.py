"""Benchmark: verify + decrypt + parse of encrypted official-account pushes.

membermkt (``MessageCrypto.decrypt_bytes`` + ``parse_message``) against wechatpy 1.8.18
(``WeChatCrypto.decrypt_message`` + ``wechatpy.parse_message``) on the same 20,000 mixed
pushes, in one run; prints throughput, the ratio, and where membermkt's time goes.

wechatpy is never a membermkt dependency: if it is not importable here, this script creates
a throw-away virtualenv (``$MEMBERMKT_BENCH_VENV`` or ``/tmp/membermkt-bench-venv``),
installs ``wechatpy==1.8.18`` and membermkt into it, and re-runs itself there.

Then (``--store``, or alone with ``--store-only``, which needs no wechatpy): recording
pushes in a SQLite file store — resolve + upsert + append as three transactions (the path
before ``ingest_push``) against ``store.ingest_push`` (one) — as pushes/s and their ratio.

Usage: ``python benchmarks/callbacks.py [--n 20000] [--repeat 3] [--store | --store-only]``
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
import venv
from pathlib import Path

WECHATPY = "wechatpy==1.8.18"
ROOT = Path(__file__).resolve().parent.parent


def ensure_wechatpy() -> None:
    try:
        import wechatpy

        if wechatpy.__version__ == "1.8.18":
            return
    except ImportError:
        pass
    if os.environ.get("MEMBERMKT_BENCH_CHILD"):
        sys.exit("wechatpy 1.8.18 could not be installed in the benchmark venv")
    target = Path(os.environ.get("MEMBERMKT_BENCH_VENV", "/tmp/membermkt-bench-venv"))
    if not (target / "bin" / "python").exists():
        print(f"creating benchmark venv at {target} (wechatpy is not a membermkt dependency)")
        venv.create(target, with_pip=True)
    py = str(target / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", WECHATPY, "-e", str(ROOT)], check=True)
    env = dict(os.environ, MEMBERMKT_BENCH_CHILD="1")
    sys.exit(subprocess.call([py, __file__, *sys.argv[1:]], env=env))


TOKEN = "benchtoken"
KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxb11529c136998cb6"


def make_pushes(n: int, seed: int = 7) -> list[tuple[bytes, str, str, str]]:
    """``n`` encrypted pushes of mixed kinds: (body, msg_signature, timestamp, nonce)."""
    from membermkt.channels.wechat import MessageCrypto

    rng = random.Random(seed)
    crypto = MessageCrypto(TOKEN, KEY, APPID)

    def cd(v: str) -> str:
        return f"<![CDATA[{v}]]>"

    kinds = [
        lambda: (
            f"<MsgType>{cd('text')}</MsgType><Content>{cd('你好 ' * rng.randint(1, 30))}"
            f"</Content><MsgId>{rng.getrandbits(62)}</MsgId>"
        ),
        lambda: (
            f"<MsgType>{cd('image')}</MsgType><PicUrl>{cd('http://mmbiz.qpic.cn/x.jpg')}"
            f"</PicUrl><MediaId>{cd('media' + str(rng.random()))}</MediaId>"
            f"<MsgId>{rng.getrandbits(62)}</MsgId>"
        ),
        lambda: (
            f"<MsgType>{cd('event')}</MsgType><Event>{cd('subscribe')}</Event>"
            f"<EventKey>{cd('qrscene_store' + str(rng.randint(1, 99)))}</EventKey>"
            f"<Ticket>{cd('gQH47joAAAAAAAAAASxodHRw')}</Ticket>"
        ),
        lambda: (
            f"<MsgType>{cd('event')}</MsgType><Event>{cd('SCAN')}</Event>"
            f"<EventKey>{cd(str(rng.randint(1, 9999)))}</EventKey><Ticket>{cd('TICKET')}</Ticket>"
        ),
        lambda: (
            f"<MsgType>{cd('event')}</MsgType><Event>{cd('CLICK')}</Event>"
            f"<EventKey>{cd('MENU_' + str(rng.randint(1, 9)))}</EventKey>"
        ),
        lambda: (
            f"<MsgType>{cd('event')}</MsgType><Event>{cd('VIEW')}</Event>"
            f"<EventKey>{cd('https://shop.example.com/item/' + str(rng.randint(1, 10**6)))}"
            "</EventKey>"
        ),
        lambda: (
            f"<MsgType>{cd('event')}</MsgType><Event>{cd('LOCATION')}</Event>"
            f"<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>"
        ),
        lambda: (
            f"<MsgType>{cd('event')}</MsgType><Event>{cd('unsubscribe')}</Event><EventKey>{cd('')}</EventKey>"
        ),
        lambda: (
            f"<MsgType>{cd('event')}</MsgType><Event>{cd('TEMPLATESENDJOBFINISH')}</Event>"
            f"<MsgID>{rng.getrandbits(40)}</MsgID><Status>{cd('success')}</Status>"
        ),
        lambda: (
            f"<MsgType>{cd('link')}</MsgType><Title>{cd('标题')}</Title><Description>"
            f"{cd('描述')}</Description><Url>{cd('https://example.com/a')}</Url><MsgId>{rng.getrandbits(62)}</MsgId>"
        ),
    ]
    out = []
    for i in range(n):
        openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS" + format(rng.getrandbits(12), "03x")
        ts = str(1_700_000_000 + i)
        xml = (
            f"<xml><ToUserName>{cd('gh_1234567890ab')}</ToUserName><FromUserName>{cd(openid)}"
            f"</FromUserName><CreateTime>{ts}</CreateTime>{rng.choice(kinds)()}</xml>"
        )
        nonce = str(rng.getrandbits(31))
        enc = crypto.encrypt_message(xml)
        body = (
            f"<xml><ToUserName>{cd('gh_1234567890ab')}</ToUserName>"
            f"<Encrypt>{cd(enc)}</Encrypt></xml>"
        ).encode()
        out.append((body, crypto.signature(ts, nonce, enc), ts, nonce))
    return out


def run_membermkt(pushes: list[tuple[bytes, str, str, str]]) -> list[tuple[str, str]]:
    from membermkt.channels.wechat import MessageCrypto, parse_message

    crypto = MessageCrypto(TOKEN, KEY, APPID)
    out = []
    for body, sig, ts, nonce in pushes:
        msg = parse_message(crypto.decrypt_bytes(body, sig, ts, nonce))
        out.append((msg.openid, msg.type))
    return out


def run_wechatpy(pushes: list[tuple[bytes, str, str, str]]) -> list[tuple[str, str]]:
    from wechatpy import parse_message
    from wechatpy.crypto import WeChatCrypto

    crypto = WeChatCrypto(TOKEN, KEY, APPID)
    out = []
    for body, sig, ts, nonce in pushes:
        msg = parse_message(crypto.decrypt_message(body, sig, ts, nonce))
        out.append((msg.source, msg.type))
    return out


def timed(fn, pushes) -> float:
    """CPU seconds of one run (process time: steadier than wall time on a busy machine)."""
    t = time.process_time()
    fn(pushes)
    return time.process_time() - t


def best(fn, pushes, repeat: int) -> float:
    return min(timed(fn, pushes) for _ in range(repeat))


def breakdown(pushes: list[tuple[bytes, str, str, str]], repeat: int) -> dict[str, float]:
    """Where membermkt's time goes, stage by stage (cumulative stages, differenced)."""
    from membermkt.channels.wechat import MessageCrypto
    from membermkt.channels.wechat._xml import parse_fields
    from membermkt.channels.wechat.messages import message_from_fields

    crypto = MessageCrypto(TOKEN, KEY, APPID)

    def extract(ps):
        for body, _sig, _ts, _nonce in ps:
            crypto.extract_encrypt(body)

    def verify(ps):
        for body, sig, ts, nonce in ps:
            crypto.check_msg_signature(sig, ts, nonce, crypto.extract_encrypt(body))

    def decrypt(ps):
        for body, sig, ts, nonce in ps:
            crypto.decrypt_bytes(body, sig, ts, nonce)

    plains = [crypto.decrypt_bytes(*p) for p in pushes]

    def xml(ps):
        for x in plains:
            parse_fields(x)

    def model(ps):
        parsed = [parse_fields(x) for x in plains]
        t = time.process_time()
        for fields, root in parsed:
            message_from_fields(fields, root)
        return time.process_time() - t

    t_extract = best(extract, pushes, repeat)
    t_verify = best(verify, pushes, repeat)
    t_decrypt = best(decrypt, pushes, repeat)
    t_xml = best(xml, pushes, repeat)
    t_model = min(model(pushes) for _ in range(repeat))
    return {
        "find <Encrypt> + prolog check": t_extract,
        "msg_signature (sha1, constant-time compare)": t_verify - t_extract,
        "base64 + AES-CBC + padding/length/appid checks": t_decrypt - t_verify,
        "XML fields (flat fast path; expat otherwise)": t_xml,
        "typed message construction": t_model,
    }


def bench_store(n: int, repeat: int) -> None:
    """Pushes/s into a SQLite file store: three transactions per push against one."""
    import datetime as dt
    import tempfile

    from membermkt.channels._ingest import ingest
    from membermkt.core.events import Event
    from membermkt.core.identity import Identity
    from membermkt.stores import SqlStore

    rng = random.Random(11)
    # a follower base that pushes again and again, plus new followers (1 push in 5)
    pushes = [f"o{rng.randrange(n // 5 + 1)}" for _ in range(n)]
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)

    def run(one_tx: bool) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            store = SqlStore(f"sqlite:///{tmp}/bench.db")
            store.create_schema()

            class ThreeSteps:  # the store without ingest_push: resolve, upsert, append
                resolve = store.resolve
                upsert_members = store.upsert_members
                append_events = store.append_events

            target = store if one_tx else ThreeSteps()
            start, cpu = time.perf_counter(), time.process_time()
            for i, openid in enumerate(pushes):
                at = t0 + dt.timedelta(seconds=i)
                ingest(
                    target,
                    Identity.openid(APPID, openid),
                    lambda mid, at=at, i=i: [Event(mid, "message", at, key=f"wx:{i}")],
                )
            took = (time.perf_counter() - start, time.process_time() - cpu)
            store.close()
            return took

    threes, ones = [], []
    for _ in range(repeat):  # interleaved, so both see the same machine
        threes.append(run(False))
        ones.append(run(True))
    three, one = min(threes), min(ones)
    three_cpu, one_cpu = min(t[1] for t in threes), min(t[1] for t in ones)
    print(f"{n} pushes recorded in SQLite (file, WAL), best of {repeat}")
    print(f"  resolve + upsert + append (3 tx) {n / three[0]:10.0f} pushes/s (wall)")
    print(f"  ingest_push (1 tx)               {n / one[0]:10.0f} pushes/s (wall)")
    print(
        f"  ratio (one transaction / three):  {three[0] / one[0]:.2f}x wall time, "
        f"{three_cpu / one_cpu:.2f}x CPU time"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", action="store_true", help="also time recording in a store")
    ap.add_argument("--store-only", action="store_true", help="only time recording (no wechatpy)")
    args = ap.parse_args()
    if args.store_only:
        bench_store(min(args.n, 5000), args.repeat)
        return
    ensure_wechatpy()
    import wechatpy

    pushes = make_pushes(args.n)
    assert run_membermkt(pushes[:500]) == run_wechatpy(pushes[:500]), "implementations disagree"
    t_mm = t_wp = float("inf")
    for _ in range(args.repeat):  # interleaved, so both see the same machine
        t_mm = min(t_mm, timed(run_membermkt, pushes))
        t_wp = min(t_wp, timed(run_wechatpy, pushes))
    n = len(pushes)
    print(f"{n} mixed encrypted pushes, verify + decrypt + parse, best of {args.repeat} (CPU time)")
    for label, t in (("membermkt", t_mm), (f"wechatpy {wechatpy.__version__}", t_wp)):
        print(f"  {label:<18} {t:8.3f} s  {n / t:10.0f} pushes/s  {t / n * 1e6:6.1f} µs each")
    print(f"  ratio (wechatpy / membermkt): {t_wp / t_mm:.2f}x")
    print("where membermkt's time goes (per push):")
    for stage, t in breakdown(pushes, args.repeat).items():
        print(f"  {stage:<48} {t / n * 1e6:6.2f} µs")
    if args.store:
        bench_store(min(args.n, 5000), args.repeat)


if __name__ == "__main__":
    main()
