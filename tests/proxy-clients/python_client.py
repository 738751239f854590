"""toxiproxy-python (PyPI) against a running firedrill proxy.

Usage: python_client.py API_HOST API_PORT
Exits non-zero (an uncaught exception) on the first step that fails.
"""
import socket
import sys
import threading
import time

from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound


def echo_upstream():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def serve(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return "127.0.0.1:%d" % srv.getsockname()[1]


def rtt(listen, payload=b"ping"):
    host, port = listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as c:
        start = time.monotonic()
        c.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = c.recv(65536)
            assert chunk, "connection closed early"
            got += chunk
        assert got == payload, got
        return time.monotonic() - start


def refused(listen):
    host, port = listen.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return False
    except OSError:
        return True


def step(name):
    print("python: " + name, flush=True)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    upstream = echo_upstream()
    tp = Toxiproxy()
    tp.update_api_consumer(host, port)
    step("running and version")
    assert tp.running()
    assert tp.version() is not None

    tp.destroy_all()
    step("create proxy")
    proxy = tp.create(upstream=upstream, name="py_echo", listen="127.0.0.1:0")
    assert proxy.enabled is True
    assert not proxy.listen.endswith(":0"), proxy.listen
    assert "py_echo" in tp.proxies()
    assert rtt(proxy.listen) < 0.1

    step("add latency toxic")
    proxy.add_toxic(type="latency", attributes={"latency": 200})
    assert "latency_downstream" in proxy.toxics()
    assert proxy.get_toxic("latency_downstream").attributes["latency"] == 200
    assert rtt(proxy.listen) >= 0.2

    step("add upstream bandwidth toxic with a name")
    proxy.add_toxic(type="bandwidth", name="slow_up", stream="upstream", attributes={"rate": 1000})
    assert set(proxy.toxics()) == {"latency_downstream", "slow_up"}

    step("remove toxics")
    proxy.destroy_toxic("latency_downstream")
    proxy.destroy_toxic("slow_up")
    assert proxy.toxics() == {}
    assert rtt(proxy.listen) < 0.1

    step("bad toxic type is rejected")
    try:
        proxy.add_toxic(type="gremlins")
        raise AssertionError("unknown toxic type accepted")
    except InvalidToxic:
        pass

    step("disable and enable")
    proxy.disable()
    assert refused(proxy.listen)
    assert tp.get_proxy("py_echo").enabled is False
    proxy.enable()
    assert rtt(proxy.listen) < 0.1
    with proxy.down():
        assert refused(proxy.listen)
    assert rtt(proxy.listen) < 0.1

    step("populate and reset")
    tp.populate([{"name": "py_other", "upstream": upstream, "listen": "127.0.0.1:0"}])
    assert set(tp.proxies()) == {"py_echo", "py_other"}
    proxy.add_toxic(type="timeout", attributes={"timeout": 0})
    proxy.disable()
    tp.reset()
    assert tp.get_proxy("py_echo").enabled is True
    assert proxy.toxics() == {}

    step("destroy")
    tp.destroy_all()
    assert tp.proxies() == {}
    try:
        proxy.destroy()
        raise AssertionError("deleting a deleted proxy succeeded")
    except NotFound:
        pass
    print("python client: all steps passed")


if __name__ == "__main__":
    main()
