// Socket.IO 4 reference server for the fan-out benchmark: every client joins room "bench";
// POST /broadcast emits the request body as event "msg" to that room (encoded once by
// Socket.IO, written to every socket). Usage: node server.js [port] [host]
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 3000);
const host = process.argv[3] || '127.0.0.1';

const httpServer = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/broadcast') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      io.to('bench').emit('msg', Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
    return;
  }
  if (req.url === '/healthz') {
    res.writeHead(200);
    res.end('ok');
    return;
  }
  res.writeHead(404);
  res.end();
});

// WebSocket only (the generator speaks engine.io v4 over WebSocket), no compression.
const io = new Server(httpServer, { transports: ['websocket'], perMessageDeflate: false });
io.on('connection', (socket) => socket.join('bench'));

httpServer.listen(port, host, () => console.log(`socket.io reference listening on ${host}:${port}`));
const stop = () => { io.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
