name 'sudo'
description 'Sample: sudoers for the platform team'
version '0.1.0'
