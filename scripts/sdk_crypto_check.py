"""Safe-mode checks of wxauth with wechatpy's own cipher and signer (run by
scripts/test-sdk-crypto.sh). Nothing here encrypts, decrypts or signs by
itself: every push is wechatpy's, every reply is opened by wechatpy.

Usage: sdk_crypto_check.py WECHAT_URL TOKEN KEY PREVIOUS_KEY APPID
"""
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

url, token, key, prev, appid = sys.argv[1:6]
openid = "oSdkCheckUser000000000000001"
counter = [0]


def push_xml(content, pad=""):
    """A text push from the follower, as WeChat's plaintext; `pad` is an
    extra element the app ignores, to set the length."""
    counter[0] += 1
    return (
        "<xml><ToUserName><![CDATA[gh_sdkcheck000]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{int(time.time() * 1000) * 100 + counter[0]}</MsgId>{pad}</xml>"
    )


def send(xml, crypto, msg_signature=None):
    """Encrypts `xml` with wechatpy as WeChat's push and POSTs it; returns
    (status, body, timestamp, nonce)."""
    timestamp, nonce = str(int(time.time())), str(1000000 + counter[0])
    envelope = xmltodict.parse(crypto.encrypt_message(xml, nonce, timestamp))["xml"]
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce)
    query = urllib.parse.urlencode({
        "signature": signer.signature,
        "timestamp": timestamp,
        "nonce": nonce,
        "openid": openid,
        "encrypt_type": "aes",
        "msg_signature": msg_signature or envelope["MsgSignature"],
    })
    body = ("<xml><ToUserName><![CDATA[gh_sdkcheck000]]></ToUserName>"
            f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>")
    request = urllib.request.Request(f"{url}?{query}", data=body.encode(),
                                     headers={"Content-Type": "text/xml"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def open_reply(body, crypto):
    """wechatpy's decryption of wxauth's reply, after its MsgSignature."""
    reply = xmltodict.parse(body)["xml"]
    assert len(reply["TimeStamp"]) == 10, f"TimeStamp in seconds: {reply['TimeStamp']}"
    assert abs(int(reply["TimeStamp"]) - time.time()) < 60
    plain = crypto.decrypt_message(body, reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"])
    return xmltodict.parse(plain)["xml"]


def check(condition, what):
    if not condition:
        print(f"FAIL - {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok - {what}")


current = WeChatCrypto(token, key, appid)
status, body = send(push_xml("登录"), current)
check(status == 200 and "<Encrypt>" in body, f"wechatpy's encrypted push is taken ({status})")
reply = open_reply(body, current)
check(reply["ToUserName"] == openid and "/login" in reply["Content"],
      "wechatpy opens and verifies the encrypted reply: the login link, to the follower")

# Plaintext length 16 + 4 + len(xml) + len(appid) a multiple of 32: wechatpy
# pads a whole block of 32 bytes of 0x20.
xml = push_xml("登录")
need = (-(16 + 4 + len(xml.encode()) + len(appid))) % 32
# An element the app ignores makes up the difference; "<P></P>" alone is 7.
filler = need if need >= 7 else need + 32
pad = "<P>" + "x" * (filler - 7) + "</P>"
xml = push_xml("登录", pad)
check((16 + 4 + len(xml.encode()) + len(appid)) % 32 == 0, "the next push fills its last block")
status, body = send(xml, current)
check(status == 200 and "/login" in open_reply(body, current)["Content"],
      "a push padded with a whole 32-byte block is taken and answered")

old = WeChatCrypto(token, prev, appid)
status, body = send(push_xml("login"), old)
check(status == 200 and "/login" in open_reply(body, old)["Content"],
      "a push under the previous key is answered under the previous key")
try:
    reply = xmltodict.parse(body)["xml"]
    current.decrypt_message(body, reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"])
    opened_under_current = True
except Exception:  # wechatpy's own error for a wrong key: bad padding or appid
    opened_under_current = False
check(not opened_under_current, "that reply does not open under the current key")

status, _ = send(push_xml("sdk-check-foreign"), WeChatCrypto(token, key, "wx0000000000other"))
check(status == 400, f"another account's push is refused ({status})")
status, _ = send(push_xml("sdk-check-wrong-key"),
                 WeChatCrypto(token, "Z" * 43, appid))
check(status == 400, f"a push under a key neither current nor previous is refused ({status})")
status, _ = send(push_xml("sdk-check-bad-sig"), current, msg_signature="0" * 40)
check(status == 403, f"a push with a wrong msg_signature is refused ({status})")
