"""Browser tests: a real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright."""


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real headless Chromium (needs /usr/bin/chromium)")
