#!/usr/bin/env node
import '../dist/qsd-bin.js';
