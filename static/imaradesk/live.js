// The pages' live socket: connects, reconnects with a growing pause (0.5 s to 32 s), pings
// every 30 s so proxies keep it open, and shows "reconnecting" while it is down. The page
// handles the events (and shows "connected" on the server's hello).
(function () {
  "use strict";
  window.imaradeskLive = function (path, onEvent, reconnectingLabel) {
    const indicator = document.getElementById("connection");
    let socket = null;
    let retry = 0;

    function open() {
      return socket !== null && socket.readyState === WebSocket.OPEN;
    }

    function send(message) {
      if (!open()) return false;
      socket.send(JSON.stringify(message));
      return true;
    }

    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + path);
      socket.onopen = () => { retry = 0; };
      socket.onmessage = (event) => onEvent(JSON.parse(event.data));
      socket.onclose = () => {
        if (indicator) {
          indicator.textContent = reconnectingLabel;
          indicator.className = "connection down";
        }
        retry = Math.min(retry + 1, 6);
        setTimeout(connect, 500 * 2 ** retry);
      };
    }

    setInterval(() => send({type: "ping"}), 30000);
    connect();
    return {send: send, isOpen: open};
  };
})();
