"""A headless Chromium driven over the DevTools protocol on a pipe (no extra package needed).

`--remote-debugging-pipe` makes Chromium read NUL-terminated JSON commands from fd 3 and write
replies and events to fd 4, the transport Puppeteer uses; a page is a target attached in
"flat" mode, so its commands carry a sessionId.
"""

import base64
import fcntl
import json
import os
import shutil
import subprocess
import time

FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--mute-audio', '--remote-debugging-pipe')


def find_chromium():
  for name in ('chromium', 'chromium-browser', 'google-chrome'):
    path = shutil.which(name)
    if path:
      return path
  return None


class Browser:
  """One Chromium process and one page; `events` collects every event received."""

  def __init__(self, binary, user_data_dir, timeout_s=60):
    self.timeout_s = timeout_s
    read_end, self._to_chrome = os.pipe()
    self._from_chrome, write_end = os.pipe()
    # Chromium wants the pipe on fds 3 and 4; bash moves it there in the child (no preexec_fn,
    # which is unsafe in a process with threads such as JAX's), from fds >= 10 so that the
    # moves never overwrite each other.
    child = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (read_end, write_end)]
    for fd in (read_end, write_end):
      os.close(fd)
    self.process = subprocess.Popen(
        ['bash', '-c', f'exec "$@" 3<&{child[0]} 4>&{child[1]} {child[0]}<&- {child[1]}>&-',
         'chromium', binary, *FLAGS, f'--user-data-dir={user_data_dir}', 'about:blank'],
        pass_fds=child, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    for fd in child:
      os.close(fd)
    self._buffer, self._next_id, self.events = b'', 0, []
    target = self.send('Target.createTarget', url='about:blank')['targetId']
    self.session = self.send('Target.attachToTarget', targetId=target, flatten=True)['sessionId']

  def _read_message(self, deadline):
    while b'\0' not in self._buffer:
      if time.time() > deadline:
        raise TimeoutError('no reply from chromium')
      chunk = os.read(self._from_chrome, 1 << 16)
      if not chunk:
        raise RuntimeError('chromium closed the pipe')
      self._buffer += chunk
    message, self._buffer = self._buffer.split(b'\0', 1)
    return json.loads(message)

  def send(self, method, session=None, **params):
    """Sends a command (to the page when `session`) and returns its result."""
    self._next_id += 1
    command = {'id': self._next_id, 'method': method, 'params': params}
    if session:
      command['sessionId'] = session
    os.write(self._to_chrome, json.dumps(command).encode() + b'\0')
    deadline = time.time() + self.timeout_s
    while True:
      message = self._read_message(deadline)
      if message.get('id') == self._next_id:
        if 'error' in message:
          raise RuntimeError(f'{method}: {message["error"]}')
        return message.get('result', {})
      self.events.append(message)

  def page(self, method, **params):
    return self.send(method, session=self.session, **params)

  def wait_event(self, method):
    deadline = time.time() + self.timeout_s
    while not any(e.get('method') == method for e in self.events):
      self.events.append(self._read_message(deadline))

  def evaluate(self, expression):
    """The value of a JS expression in the page (promises awaited)."""
    result = self.page('Runtime.evaluate', expression=expression, awaitPromise=True,
                       returnByValue=True)
    if 'exceptionDetails' in result:
      raise RuntimeError(f'page script failed: {result["exceptionDetails"]}')
    return result['result'].get('value')

  def open(self, url, width=1200, height=900):
    """Loads `url` with console, log and runtime events on; returns when `load` fired."""
    for domain in ('Page', 'Runtime', 'Log'):
      self.page(f'{domain}.enable')
    self.page('Emulation.setDeviceMetricsOverride', width=width, height=height,
              deviceScaleFactor=1, mobile=False)
    self.page('Page.navigate', url=url)
    self.wait_event('Page.loadEventFired')

  def errors(self):
    """Console errors, uncaught exceptions and error log entries seen so far."""
    found = []
    for e in self.events:
      method, params = e.get('method'), e.get('params', {})
      if method == 'Runtime.consoleAPICalled' and params.get('type') in ('error', 'assert'):
        found.append(params)
      elif method == 'Runtime.exceptionThrown':
        found.append(params)
      elif method == 'Log.entryAdded' and params['entry'].get('level') == 'error':
        found.append(params['entry'])
    return found

  def screenshot(self, path):
    """A PNG of the whole page."""
    data = self.page('Page.captureScreenshot', format='png', captureBeyondViewport=True)['data']
    with open(path, 'wb') as f:
      f.write(base64.b64decode(data))

  def close(self):
    try:
      self.send('Browser.close')
    except (RuntimeError, TimeoutError, OSError):
      pass
    try:
      self.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()
    os.close(self._to_chrome)
    os.close(self._from_chrome)
