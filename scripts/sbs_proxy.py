"""A TCP proxy that counts the bytes it forwards: the wire figure of the side-by-side run.

Every contender's remote-write connection goes through one of these (sender -> proxy -> its
receiver), so bytes are counted the same way for all of them: TCP payload, including HTTP
headers, and for slo-gateway the TLS records (handshakes included). The proxy serves its
counters on an admin port as a Prometheus text page:

  sbs_proxy_bytes_total{direction="upstream"}    bytes from the sender to the receiver
  sbs_proxy_bytes_total{direction="downstream"}  bytes of the receiver's answers
  sbs_proxy_connections_total                    connections accepted
"""

import asyncio

CHUNK = 256 * 1024


async def run(listen_port, upstream_port, admin_port):
    counts = {"upstream": 0, "downstream": 0, "connections": 0}

    async def pump(reader, writer, direction):
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                counts[direction] += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except (ConnectionError, OSError):
                pass

    async def on_client(client_reader, client_writer):
        counts["connections"] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pump(client_reader, up_writer, "upstream"),
            pump(up_reader, client_writer, "downstream"),
        )

    async def on_admin(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        body = (
            f'sbs_proxy_bytes_total{{direction="upstream"}} {counts["upstream"]}\n'
            f'sbs_proxy_bytes_total{{direction="downstream"}} {counts["downstream"]}\n'
            f"sbs_proxy_connections_total {counts['connections']}\n"
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", listen_port)
    admin = await asyncio.start_server(on_admin, "127.0.0.1", admin_port)
    print(f"proxy 127.0.0.1:{listen_port} -> 127.0.0.1:{upstream_port}, counters on :{admin_port}", flush=True)
    async with server, admin:
        await asyncio.gather(server.serve_forever(), admin.serve_forever())


def main(listen_port, upstream_port, admin_port):
    asyncio.run(run(listen_port, upstream_port, admin_port))
