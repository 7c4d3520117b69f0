#!/usr/bin/env python3
"""Client for scenarios-hostile.sh: sends HTTP/1.1 requests byte for byte as given (curl would
percent-encode or refuse some of these targets), one connection each, and prints each answer's
status line. Usage: client_hostile.py HOST:PORT HOSTHEADER TARGET...
"""
import socket
import sys


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    hosthdr = sys.argv[2]
    for target in sys.argv[3:]:
        s = socket.create_connection((host, int(port)), timeout=5)
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: lab-hostile\r\nConnection: close\r\n\r\n"
               % (target, hosthdr)).encode("utf-8")
        s.sendall(req)
        data = b""
        while True:
            try:
                part = s.recv(65536)
            except socket.timeout:
                break
            if not part:
                break
            data += part
        s.close()
        print(repr(data.split(b"\r\n", 1)[0]))


if __name__ == "__main__":
    main()
